"""Interactive plotly figures of a study report: the front, hypervolume history, per-epoch curves, per-layer spikes.

Each point's ``customdata`` is its trial number (the page's click handler scrolls to that trial's table row) and
its hover text names the trial, its metrics and its parameters.
"""

from __future__ import annotations

import math
from typing import Any

import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from .data import NEAR_BASELINE_POINTS, ReportData

PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22", "#7f7f7f",
           "#d62728")
FRONT, BASELINE, INFEASIBLE = "#1f77b4", "#111111", "#d62728"
# No figure titles: the page's headings name each figure.
LAYOUT = dict(template="plotly_white", margin=dict(l=70, r=20, t=40, b=60), hovermode="closest",
              legend=dict(orientation="h", yanchor="bottom", y=1.02, x=0), font=dict(family="sans-serif"))


def hover_text(d: ReportData, row: pd.Series | dict[str, Any]) -> str:
    """``trial N (state)``, accuracy and cost (with their change against the baseline), then every parameter."""
    lines = [f"<b>trial {int(row['trial'])}</b>" + (" (baseline)" if row.get("is_baseline") else "")
             + ("" if row["state"] == "COMPLETE" else f" ({row['state'].lower()} at epoch {row['epochs']})")]
    acc, cost = row.get(d.accuracy), row.get(d.cost)
    if _finite(acc):
        lines.append(f"{d.accuracy}: {100 * acc:.2f} %" + (f" ({row['y']:+.2f} pt)" if d.relative else ""))
    if _finite(cost):
        lines.append(f"{d.cost}: {cost:.4g}" + (f" ({0.0 - row['x']:+.1f} %)" if d.relative else ""))
    if row["state"] == "COMPLETE" and not row.get("is_feasible", True):
        lines.append("infeasible (below min accuracy)")
    for p in d.params:
        value = row.get(p)
        if value is not None and not (isinstance(value, float) and math.isnan(value)):
            lines.append(f"{p[len('params_'):]}: {value:.4g}" if isinstance(value, float) else
                         f"{p[len('params_'):]}: {value}")
    return "<br>".join(lines)


def _finite(value: Any) -> bool:
    return value is not None and isinstance(value, (int, float)) and math.isfinite(value)


def _points(d: ReportData, rows: pd.DataFrame, name: str, **marker: Any) -> go.Scatter:
    return go.Scatter(x=rows["x"], y=rows["y"], mode="markers", name=name, marker=marker,
                      customdata=rows["trial"].astype(int), text=[hover_text(d, r) for _, r in rows.iterrows()],
                      hovertemplate="%{text}<extra></extra>")


def pareto_figure(d: ReportData, full_range: bool = False) -> go.Figure:
    """Trials on the accuracy-change / cost-reduction plane: front, baseline, constraint and query answers."""
    t = d.trials
    fig = go.Figure()
    done = t[t["state"] == "COMPLETE"]
    front_ids = set(d.front["trial"].astype(int))
    others = done[~done["trial"].isin(front_ids)]
    fig.add_trace(_points(d, others[others["is_feasible"]], "trials", color="#9a9a9a", size=8, opacity=0.8))
    bad = others[~others["is_feasible"]]
    if len(bad):
        fig.add_trace(_points(d, bad, "infeasible", color=INFEASIBLE, size=8, symbol="x", opacity=0.6))
    pruned = t[t["state"] == "PRUNED"]
    if len(pruned):
        fig.add_trace(_points(d, pruned, "pruned (epoch reached)", color="#b0b0b0", size=7, symbol="circle-open"))
    front = d.front.sort_values("x")  # the line bounds what the front dominates: better is up and right (left)
    fig.add_trace(go.Scatter(x=front["x"], y=front["y"], mode="lines", line=dict(color=FRONT, width=1.5,
                             shape="vh" if d.relative else "hv"), hoverinfo="skip", showlegend=False))
    fig.add_trace(_points(d, front, "Pareto front", color=FRONT, size=11, line=dict(color="white", width=1)))
    base = t[t["is_baseline"] & (t["state"] == "COMPLETE")]
    if len(base):
        fig.add_trace(_points(d, base, "baseline (λ = 0)", color=BASELINE, size=18, symbol="star"))
    _mark_answers(d, fig)
    limit = d.constraint_y()
    if limit is not None:
        fig.add_hline(y=limit, line=dict(color=INFEASIBLE, dash="dash", width=1),
                      annotation_text=f"min {d.accuracy.replace('_', ' ')} {100 * d.min_accuracy:.1f} %",
                      annotation_position="bottom right", annotation_font_color=INFEASIBLE)
        fig.add_hrect(y0=limit, y1=d.y_floor(), fillcolor=INFEASIBLE, opacity=0.07, line_width=0, layer="below")
    fig.update_layout(**LAYOUT, xaxis_title=d.x_label(), yaxis_title=d.y_label(), height=560)
    fig.update_layout(margin={**LAYOUT["margin"], "b": 110})
    if not d.relative:
        fig.update_xaxes(type="log")
    _range_buttons(d, fig, full_range)
    return fig


def _mark_answers(d: ReportData, fig: go.Figure) -> None:
    labels = d.answer_labels()
    if not labels:
        return
    rows = d.trials.set_index("trial").loc[list(labels)].reset_index()
    window = d.x_range(False) or (float(d.trials["x"].min()), float(d.trials["x"].max()))
    middle = (window[0] + window[1]) / 2  # labels point inwards, away from the plot's edges
    fig.add_trace(go.Scatter(x=rows["x"], y=rows["y"], mode="markers+text", name="query answers",
                             marker=dict(size=22, symbol="circle-open", color="#2ca02c", line=dict(width=2.5)),
                             text=[", ".join(labels[int(n)]) for n in rows["trial"]],
                             textposition=["top left" if x > middle else "top right" for x in rows["x"]],
                             textfont=dict(color="#2ca02c", size=12), customdata=rows["trial"].astype(int),
                             hovertext=[f"{', '.join(labels[int(r['trial'])])}<br>{hover_text(d, r)}"
                                        for _, r in rows.iterrows()],
                             hovertemplate="%{hovertext}<extra></extra>"))


def _range_buttons(d: ReportData, fig: go.Figure, full_range: bool) -> None:
    """Start near the baseline (or on every point with ``full_range``); two buttons switch between the views."""
    near_y, near_x = d.y_range(False), d.x_range(False)
    if near_y is None or near_x is None:
        return
    near = {"yaxis.range": list(near_y), "xaxis.range": list(near_x)}
    full = {"yaxis.autorange": True, "xaxis.autorange": True}
    if not full_range:
        fig.update_yaxes(range=list(near_y))
        fig.update_xaxes(range=list(near_x))
    fig.update_layout(updatemenus=[dict(
        type="buttons", direction="right", x=1.0, xanchor="right", y=-0.16, yanchor="top",
        active=1 if full_range else 0, showactive=True,
        buttons=[dict(label=f"within {NEAR_BASELINE_POINTS:g} pt of baseline", method="relayout", args=[near]),
                 dict(label="full range", method="relayout", args=[full])])])


def history_figure(d: ReportData) -> go.Figure:
    """Hypervolume after each complete trial: flat stretches are trials that did not improve the front."""
    trials = [n for n, _ in d.hv_history]
    fig = go.Figure(go.Scatter(
        x=list(range(1, len(trials) + 1)), y=[v for _, v in d.hv_history], mode="lines+markers",
        line=dict(shape="hv", color=FRONT), customdata=trials, name="hypervolume",
        hovertemplate="after trial %{customdata} (%{x} complete)<br>hypervolume %{y:.5g}<extra></extra>"))
    fig.update_layout(**LAYOUT, xaxis_title="complete trials",
                      yaxis_title="hypervolume", showlegend=False)
    return fig


def _trial_colours(d: ReportData) -> dict[int, str]:
    shown = [int(n) for n in d.front["trial"]]
    if d.baseline is not None and int(d.baseline["trial"]) not in shown:
        shown.insert(0, int(d.baseline["trial"]))
    return {n: (BASELINE if d.baseline is not None and n == int(d.baseline["trial"]) else PALETTE[i % len(PALETTE)])
            for i, n in enumerate(shown)}


def curves_figure(d: ReportData) -> go.Figure:
    """Validation accuracy, spikes per sample and lambda(t) per epoch for the front's trials (and the baseline)."""
    panels = (("val_accuracy", "val accuracy (%)", 100.0), ("spikes_per_sample", "spikes per sample", 1.0),
              ("lambda", d.lambda_title(), 1.0))
    fig = make_subplots(rows=len(panels), cols=1, shared_xaxes=True, vertical_spacing=0.06,
                        subplot_titles=[p[1] for p in panels])
    for n, colour in _trial_colours(d).items():
        rows = d.histories.get(n, [])
        epochs = [r.get("epoch") for r in rows]
        for i, (key, _, scale) in enumerate(panels):
            fig.add_trace(go.Scatter(
                x=epochs, y=[scale * v if v is not None else None for v in d.curve(n, key)], mode="lines+markers",
                name=f"trial {n}", legendgroup=str(n), showlegend=i == 0, customdata=[n] * len(rows),
                line=dict(color=colour, dash="dash" if colour == BASELINE else "solid"), marker=dict(size=5),
                hovertemplate=f"trial {n}<br>epoch %{{x}}<br>{key}: %{{y:.4g}}<extra></extra>"), row=i + 1, col=1)
    fig.update_layout(**{**LAYOUT, "legend": dict(orientation="v", x=1.02, y=1)}, height=720)
    fig.update_xaxes(title_text="epoch", row=len(panels), col=1)
    return fig


def layers_figure(d: ReportData) -> go.Figure:
    """Spikes per sample of each spiking layer (validation split, last epoch) for the front's trials."""
    fig = go.Figure()
    for n, colour in _trial_colours(d).items():
        layers = d.layers.get(n, {})
        fig.add_trace(go.Bar(x=list(layers), y=list(layers.values()), name=f"trial {n}", marker_color=colour,
                             customdata=[n] * len(layers),
                             hovertemplate=f"trial {n}<br>layer %{{x}}<br>%{{y:.4g}} spikes per sample<extra></extra>"))
    fig.update_layout(**{**LAYOUT, "legend": dict(orientation="v", x=1.02, y=1)}, barmode="group",
                      xaxis_title="spiking layer",
                      yaxis_title="spikes per sample")
    return fig
