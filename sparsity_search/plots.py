"""Matplotlib figures of a study: the accuracy / spikes plane with the front and baseline, and hypervolume history."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import matplotlib

matplotlib.use("Agg")  # files only; no display needed on servers
import matplotlib.pyplot as plt  # noqa: E402

if TYPE_CHECKING:
    from .api import Study


def plot_pareto(study: "Study", path: Path) -> None:
    """All complete trials in grey, the front as a highlighted step line, the baseline as a star."""
    table = study.trials()
    acc, cost = study.spec.accuracy_metric, study.spec.cost_metric
    done = table[table["state"] == "COMPLETE"]
    front = done[done["is_pareto"]].sort_values(cost)
    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    ax.scatter(done[cost], 100 * done[acc], s=18, color="0.65", label="trials")
    pruned = table[table["state"] == "PRUNED"]
    if len(pruned):
        ax.scatter(pruned[cost], 100 * pruned[acc], s=14, marker="x", color="0.8", label="pruned")
    ax.step(front[cost], 100 * front[acc], where="post", color="tab:blue", lw=1.5)
    ax.scatter(front[cost], 100 * front[acc], s=30, color="tab:blue", label="Pareto front", zorder=3)
    base = done[done["is_baseline"]]
    if len(base):
        ax.scatter(base[cost], 100 * base[acc], s=160, marker="*", color="tab:red", label="baseline (λ=0)",
                   zorder=4)
    ax.set_xlabel(cost.replace("_", " "))
    ax.set_ylabel(f"{acc.replace('_', ' ')} (%)")
    ax.set_title(f"{study.spec.name}: accuracy vs spiking activity")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_history(study: "Study", path: Path) -> None:
    """Hypervolume after each complete trial, against the study's fixed reference point."""
    history = study.hypervolume_history()
    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    ax.plot(range(1, len(history) + 1), history, marker="o", ms=3)
    ax.set_xlabel("complete trials")
    ax.set_ylabel("hypervolume")
    ax.set_title(f"{study.spec.name}: hypervolume history")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
