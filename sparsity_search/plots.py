"""Static figures of a study (PNG, SVG or PDF by the file's extension) for ``sparsity-search plot --kind``.

They draw the same ``ReportData`` as the HTML report: the front on cost reduction against accuracy change
relative to the lambda = 0 baseline (near the baseline unless ``full_range``), the hypervolume history, and the
front trials' per-epoch curves and per-layer spikes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import matplotlib

matplotlib.use("Agg")  # files only; no display needed on servers
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from .report.data import NEAR_BASELINE_POINTS, ReportData  # noqa: E402

FRONT, BASELINE, INFEASIBLE = "tab:blue", "black", "tab:red"


def plot_pareto(d: ReportData, full_range: bool = False) -> Figure:
    """Trials, infeasible ones and the region below the accuracy constraint in red, the front, baseline, answers."""
    t = d.trials
    fig, ax = plt.subplots(figsize=(7.2, 4.8))
    done = t[t["state"] == "COMPLETE"]
    others = done[~done["trial"].isin(d.front["trial"])]
    ax.scatter(others.loc[others["is_feasible"], "x"], others.loc[others["is_feasible"], "y"], s=18,
               color="0.6", label="trials")
    bad = others[~others["is_feasible"]]
    if len(bad):
        ax.scatter(bad["x"], bad["y"], s=22, marker="x", color=INFEASIBLE, alpha=0.6, label="infeasible")
    pruned = t[t["state"] == "PRUNED"]
    if len(pruned):
        ax.scatter(pruned["x"], pruned["y"], s=16, facecolors="none", edgecolors="0.7",
                   label="pruned (epoch reached)")
    front = d.front.sort_values("x")
    ax.step(front["x"], front["y"], where="pre" if d.relative else "post", color=FRONT, lw=1.3)
    ax.scatter(front["x"], front["y"], s=36, color=FRONT, label="Pareto front", zorder=3)
    base = t[t["is_baseline"] & (t["state"] == "COMPLETE")]
    if len(base):
        ax.scatter(base["x"], base["y"], s=180, marker="*", color=BASELINE, label="baseline (λ = 0)", zorder=4)
    _answers(d, ax)
    limit = d.constraint_y()
    if limit is not None:
        ax.axhline(limit, color=INFEASIBLE, ls="--", lw=1)
        ax.axhspan(d.y_floor(), limit, color=INFEASIBLE, alpha=0.07, lw=0, label="below min accuracy")
    y_range, x_range = d.y_range(full_range), d.x_range(full_range)
    if y_range is not None and x_range is not None:
        ax.set_ylim(*y_range)
        ax.set_xlim(*x_range)
    if not d.relative:
        ax.set_xscale("log")
    ax.set_xlabel(d.x_label())
    ax.set_ylabel(d.y_label())
    view = "" if y_range is None else f" (within {NEAR_BASELINE_POINTS:g} pt of the baseline; --full-range for all)"
    ax.set_title(f"{d.study_name}: accuracy against spiking activity{view}", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower left", fontsize=8)
    return fig


def _answers(d: ReportData, ax: plt.Axes) -> None:
    labels = d.answer_labels()
    rows = d.trials.set_index("trial")
    for trial, names in labels.items():
        x, y = rows.loc[trial, "x"], rows.loc[trial, "y"]
        ax.scatter([x], [y], s=260, facecolors="none", edgecolors="tab:green", linewidths=1.8, zorder=5)
        ax.annotate(", ".join(names), (x, y), xytext=(8, 8), textcoords="offset points", fontsize=8,
                    color="tab:green")


def plot_history(d: ReportData, full_range: bool = False) -> Figure:
    """Hypervolume after each complete trial, against the study's fixed reference point."""
    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    ax.step(range(1, len(d.hv_history) + 1), [v for _, v in d.hv_history], where="post", marker="o", ms=3)
    ax.set_xlabel("complete trials")
    ax.set_ylabel("hypervolume")
    ax.set_title(f"{d.study_name}: hypervolume history")
    ax.grid(alpha=0.3)
    return fig


def plot_curves(d: ReportData, full_range: bool = False) -> Figure:
    """Validation accuracy, spikes per sample and lambda(t) per epoch of the front trials (baseline dashed)."""
    fig, axes = plt.subplots(3, 1, figsize=(7.2, 8.0), sharex=True)
    panels = (("val_accuracy", "val accuracy (%)", 100.0), ("spikes_per_sample", "spikes per sample", 1.0),
              ("lambda", d.lambda_title(), 1.0))
    for n, rows in _shown(d):
        style = dict(color=BASELINE, ls="--") if _is_baseline(d, n) else {}
        for ax, (key, _, scale) in zip(axes, panels):
            ax.plot([r["epoch"] for r in rows], [scale * (float("nan") if v is None else v) for v in d.curve(n, key)],
                    marker="o", ms=3, label=f"trial {n}", **style)
    for ax, (_, label, _) in zip(axes, panels):
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8, ncol=4)
    axes[-1].set_xlabel("epoch")
    axes[0].set_title(f"{d.study_name}: per-epoch curves of the front trials")
    return fig


def plot_layers(d: ReportData, full_range: bool = False) -> Figure:
    """Spikes per sample of each spiking layer (validation split, last epoch) of the front trials."""
    shown = [(n, d.layers.get(n, {})) for n, _ in _shown(d)]
    names = list(dict.fromkeys(k for _, layers in shown for k in layers))
    fig, ax = plt.subplots(figsize=(7.2, 4.4))
    width = 0.8 / max(len(shown), 1)
    for i, (n, layers) in enumerate(shown):
        xs = [j + (i - (len(shown) - 1) / 2) * width for j in range(len(names))]
        ax.bar(xs, [layers.get(k, 0.0) for k in names], width, label=f"trial {n}",
               color=BASELINE if _is_baseline(d, n) else None)
    ax.set_xticks(range(len(names)), names)
    ax.set_xlabel("spiking layer")
    ax.set_ylabel("spikes per sample")
    ax.set_title(f"{d.study_name}: spikes per layer of the front trials")
    ax.legend(fontsize=8, ncol=4)
    ax.grid(alpha=0.3, axis="y")
    return fig


def _is_baseline(d: ReportData, n: int) -> bool:
    return d.baseline is not None and int(d.baseline["trial"]) == n


def _shown(d: ReportData) -> list[tuple[int, list[dict]]]:
    """The front trials (baseline first) that recorded epochs."""
    numbers = [int(n) for n in d.front["trial"]]
    if d.baseline is not None and int(d.baseline["trial"]) not in numbers:
        numbers.insert(0, int(d.baseline["trial"]))
    numbers.sort(key=lambda n: not _is_baseline(d, n))
    return [(n, d.histories[n]) for n in numbers if n in d.histories]


KINDS: dict[str, Callable[..., Figure]] = {"pareto": plot_pareto, "history": plot_history, "curves": plot_curves,
                                          "layers": plot_layers}


def save_plot(d: ReportData, kind: str, path: Path, full_range: bool = False) -> None:
    """Draw ``kind`` (one of ``KINDS``) and save it; the format follows the extension (png, svg, pdf)."""
    fig = KINDS[kind](d, full_range)
    try:
        fig.tight_layout()
        fig.savefig(path, dpi=120)
    finally:
        plt.close(fig)
