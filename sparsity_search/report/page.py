"""The report as one self-contained HTML page: CSS, plotly.js (inlined once) and the data live in the file itself."""

from __future__ import annotations

import html
import math
from typing import Any

import pandas as pd

from .data import ReportData
from .figures import curves_figure, history_figure, layers_figure, pareto_figure

PLOT_CONFIG = {"displaylogo": False, "responsive": True, "toImageButtonOptions": {"format": "svg"}}
CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;color:#222;background:#fff}
header{background:#1f3b57;color:#fff;padding:18px 28px}header h1{margin:0;font-size:1.6em}
header p{margin:6px 0 0;opacity:.85}main{padding:8px 28px 40px;max-width:1400px}
h2{border-bottom:1px solid #ddd;padding-bottom:4px;margin-top:32px}
.cards{display:flex;flex-wrap:wrap;gap:12px;margin:16px 0}
.card{border:1px solid #d8dee4;border-radius:8px;padding:10px 14px;min-width:170px;background:#f7f9fb}
.card b{display:block;font-size:1.25em;margin-top:2px}.card span{color:#555;font-size:.85em}
.scroll{overflow-x:auto}table{border-collapse:collapse;font-size:.88em;margin:8px 0}
th,td{border:1px solid #d8dee4;padding:4px 8px;white-space:nowrap}
th{background:#eef2f6;text-align:left}td.num{text-align:right;font-variant-numeric:tabular-nums}
tr.picked td{background:#fff3bf}tr.infeasible td{color:#a33}.hint{color:#666;font-size:.85em}
.note{border-left:5px solid #d9822b;background:#fff4e5;padding:8px 14px;margin:12px 0}
.note ul{margin:4px 0 0;padding-left:20px}
.summary th{width:190px;vertical-align:top}.summary td{white-space:normal}details summary{cursor:pointer;margin:8px 0}
"""
# A click on any point scrolls to that trial's row (opening the all-trials table if needed) and highlights it.
CLICK_JS = """
window.addEventListener('load', function () {
  document.querySelectorAll('.js-plotly-plot').forEach(function (gd) {
    gd.on('plotly_click', function (ev) {
      var n = ev.points[0].customdata; if (n === undefined) return;
      var row = document.getElementById('front-' + n) || document.getElementById('trial-' + n);
      if (!row) return;
      var box = row.closest('details'); if (box) box.open = true;
      document.querySelectorAll('tr.picked').forEach(function (r) { r.classList.remove('picked'); });
      row.classList.add('picked'); row.scrollIntoView({behavior: 'smooth', block: 'center'});
    });
  });
});
"""


def render(d: ReportData, full_range: bool = False) -> str:
    """The whole page; plotly.js is embedded with the first figure only."""
    figures = [("front", pareto_figure(d, full_range))]
    if d.hv_history:
        figures.append(("history", history_figure(d)))
    if d.histories:
        figures += [("curves", curves_figure(d)), ("layers", layers_figure(d))]
    divs = {name: fig.to_html(full_html=False, include_plotlyjs=i == 0, div_id=f"fig-{name}", config=PLOT_CONFIG)
            for i, (name, fig) in enumerate(figures)}
    e = html.escape
    parts = [f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
             f"<meta name='viewport' content='width=device-width, initial-scale=1'>"
             f"<title>{e(d.study_name)}: sparsity-search report</title><style>{CSS}</style></head><body>",
             f"<header><h1>{e(d.study_name)}: accuracy / spike trade-off</h1>"
             f"<p>{e(_status_line(d))} · generated {e(d.generated)} by sparsity-search</p></header><main>",
             _cards(d), _boundary_note(d),
             "<h2>Pareto front</h2><p class='hint'>Hover a point for its trial and parameters; click it to jump to "
             "its row below." + (" The buttons under the plot switch between the near-baseline view and the full "
                                 "range." if d.relative else "") + "</p>",
             divs["front"], "<h2>Front trials</h2>", _front_table(d)]
    if "history" in divs:
        parts += ["<h2>Search progress</h2><p class='hint'>Hypervolume of the front after each complete trial "
                  "(fixed reference point): flat stretches are trials that did not improve the front.</p>",
                  divs["history"]]
    if "curves" in divs:
        parts += ["<h2>Front trials per epoch</h2><p class='hint'>Validation accuracy, spikes per sample and λ(t) "
                  "of the front's trials, baseline dashed; click a legend entry to hide a trial." +
                  (" λ(t) of a PBT trial is the schedule it learned: the one its final weights were trained with, "
                   "through every exploit step (its exported config replays it)." if d.learned else "") + "</p>",
                  divs["curves"],
                  "<h2>Front trials per layer</h2><p class='hint'>Spikes per sample of each spiking layer at the "
                  "last epoch (validation split).</p>", divs["layers"]]
    parts += ["<h2>Study</h2>", _summary_table(d),
              f"<details><summary>All trials ({len(d.trials)})</summary>{_all_table(d)}</details>",
              f"</main><script>{CLICK_JS}</script></body></html>"]
    return "\n".join(parts)


def _status_line(d: ReportData) -> str:
    counts = d.trials["state"].value_counts().to_dict()
    done = ", ".join(f"{v} {k.lower()}" for k, v in counts.items())
    summary = dict(d.summary)
    return (f"{summary['dataset']} · {summary['model']} · {d.accuracy} against {d.cost} · {d.backend} backend · "
            f"{len(d.trials)} trials ({done or 'none yet'})")


def _fmt(value: Any, spec: str = ".4g") -> str:
    if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
        return ""
    return format(value, spec) if isinstance(value, (int, float)) and not isinstance(value, bool) else str(value)


def _cards(d: ReportData) -> str:
    e = html.escape
    cards = []
    if d.baseline is not None:
        cards.append(("baseline (λ = 0)", f"{100 * d.baseline[d.accuracy]:.2f} %",
                      f"trial {d.baseline['trial']} · {d.baseline[d.cost]:.4g} {d.cost.replace('_', ' ')}"))
    complete = int((d.trials["state"] == "COMPLETE").sum())
    cards.append(("Pareto front", f"{len(d.front)} trials", f"of {complete} complete"))
    if d.hv_history:
        cards.append(("hypervolume", f"{d.hv_history[-1][1]:.4g}", f"after trial {d.hv_history[-1][0]}"))
    rows = d.trials.set_index("trial")
    for label, trial in d.answers.items():
        if trial is None:
            cards.append((label, "none", "no front trial qualifies" if d.relative or label == "knee" else
                          "needs the lambda = 0 baseline"))
            continue
        r = rows.loc[trial]
        if r["is_baseline"]:
            cards.append((label, "the baseline", f"trial {trial}: no cheaper front trial qualifies"))
            continue
        value = (f"{r['x']:.1f} % fewer {d.cost.split('_')[0]}" if d.relative else
                 f"{r[d.cost]:.4g} {d.cost.replace('_', ' ')}")
        detail = f"trial {trial} · " + (f"{r['y']:+.2f} pt accuracy" if d.relative else f"{100 * r[d.accuracy]:.2f} %")
        cards.append((label, value, detail))
    return "<div class='cards'>" + "".join(
        f"<div class='card'><span>{e(a)}</span><b>{e(b)}</b><span>{e(c)}</span></div>" for a, b, c in cards) + "</div>"


def _boundary_note(d: ReportData) -> str:
    """The search-space bounds the front sits on, highlighted under the cards (nothing when there are none)."""
    if not d.boundary:
        return ""
    items = "".join(f"<li>{html.escape(f.message())}</li>" for f in d.boundary)
    return ("<div class='note' id='boundary'><b>The front sits on the edge of the search space:</b> better "
            f"trade-offs may lie beyond these bounds.<ul>{items}</ul></div>")


def _columns(d: ReportData) -> list[tuple[str, str, str]]:
    """(column, header, format) of the trial tables."""
    acc, cost = d.accuracy, d.cost
    cols = [(p, p[len("params_"):], ".4g") for p in d.params]
    cols += [(acc, f"{acc} (%)", "pct"), ("y", "Δ accuracy (pt)" if d.relative else "", "+.2f"),
             ("test_accuracy", "test_accuracy (%)", "pct"), (cost, cost, ".4g"),
             ("x", "reduction (%)" if d.relative else "", ".1f"), ("energy_uj", "energy_uj", ".4g"),
             ("epochs", "epochs", "d")]
    return [c for c in cols if c[1] and c[0] in d.trials]


def _cell(row: pd.Series, col: str, spec: str) -> str:
    value = row.get(col)
    if spec == "pct":
        return _fmt(100 * value if isinstance(value, float) else value, ".2f")
    if spec == "d":
        return _fmt(int(value)) if _fmt(value) else ""
    return _fmt(value, spec)


def _table(d: ReportData, rows: pd.DataFrame, id_prefix: str, extra: list[str]) -> str:
    e = html.escape
    cols = _columns(d)
    answers: dict[int, list[str]] = {}
    for label, trial in d.answers.items():
        if trial is not None:
            answers.setdefault(trial, []).append(label)
    head = "".join(f"<th>{e(h)}</th>" for h in ["trial", *extra, *(c[1] for c in cols)])
    body = []
    for _, r in rows.iterrows():
        n = int(r["trial"])
        judged = r["state"] == "COMPLETE"  # a pruned or running trial's accuracy is not final
        tags = {"state": r["state"].lower(), "feasible": ("yes" if r["is_feasible"] else "no") if judged else "",
                "answers": ", ".join((["baseline"] if r.get("is_baseline") else []) + answers.get(n, []))}
        cells = [f"<td class='num'>{n}</td>", *(f"<td>{e(tags[x])}</td>" for x in extra)]
        cells += [f"<td class='num'>{e(_cell(r, c, spec))}</td>" for c, _, spec in cols]
        cls = " class='infeasible'" if judged and not r["is_feasible"] else ""
        body.append(f"<tr id='{id_prefix}-{n}'{cls}>{''.join(cells)}</tr>")
    return f"<div class='scroll'><table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table></div>"


def _front_table(d: ReportData) -> str:
    if d.front.empty:
        return "<p>No complete trial yet.</p>"
    note = "<p class='hint'>Sorted by accuracy. Export with <code>sparsity-search pareto STUDY --format csv</code>.</p>"
    return note + _table(d, d.front, "front", ["answers", "feasible"])


def _all_table(d: ReportData) -> str:
    return _table(d, d.trials, "trial", ["state", "feasible"])


def _summary_table(d: ReportData) -> str:
    e = html.escape
    return "<table class='summary'>" + "".join(f"<tr><th>{e(k)}</th><td>{e(v)}</td></tr>" for k, v in d.summary) + \
        "</table>"
