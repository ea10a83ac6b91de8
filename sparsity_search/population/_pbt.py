"""Population-based training applied to a live population: the rules are ``sparsity_search.pbt``'s, the tensors ours.

* Held values. In PBT mode a member's lambda and learning rate are constant within an epoch: lambda is what its
  schedule reaches at the epoch's last step (the history's ``lambda``), the learning rate what its ``lr_schedule``
  gives at the epoch's first step. Explore changes settings between epochs only, so a member's lambda(t) and lr(t)
  are step functions of the epoch that ``piecewise`` points express exactly.
* Lineage. Each member carries the per-epoch (lambda, lr) its current weights were trained with. Exploit copies the
  winner's lineage with its weights, so at the end the lineage is the schedule that produced the member's final
  weights, through every exploit step: ``learned_config`` turns it into ``schedule: piecewise`` with
  ``lambda_points`` and ``lr_schedule: piecewise`` with ``lr_points``, and ``train`` on that config replays it.
* Exploit copies the winner's weights, BatchNorm statistics, optimizer state and every per-member setting (neuron
  constants, schedules, optimizer constants) slice to slice on the device; no checkpoint is read or written for it.
* Records. Every epoch's metrics get ``pbt``: the perturbed values used in that epoch, and at an exploit step the
  label (the caller's name for the member, e.g. its trial number) of the member whose weights it took after it.
* Resume. A member's checkpoint (``train``'s format) holds its current config (what exploit and explore made of
  it) and its lineage (``LINEAGE``); a population resumes from them.
"""

from __future__ import annotations

from typing import Any, Sequence

from .. import pbt
from ..config import TrainConfig
from ..errors import ConfigError

LINEAGE = "pbt_lineage"  # checkpoint key: [[lambda, lr], ...] per epoch of the weights' history
OWN = ("checkpoint_dir", "resume")  # per-member fields that stay the member's own when it copies another


def inherited(winner: TrainConfig, member: TrainConfig, per_member: Sequence[str]) -> TrainConfig:
    """``member``'s settings after it copies ``winner``: every per-member setting but ``OWN`` is the winner's."""
    return member.replace(**{f: getattr(winner, f) for f in per_member if f not in OWN})


def resumed(cfg: TrainConfig, state: dict[str, Any], per_member: Sequence[str]) -> tuple[TrainConfig, list]:
    """A member's config and lineage from its checkpoint ``state``: what explore had made of ``cfg`` by then."""
    if LINEAGE not in state:
        raise ConfigError(f"the checkpoint in {cfg.checkpoint_dir} was not written by a PBT population",
                          field="resume")
    saved = TrainConfig(**state["config"])
    return inherited(saved, cfg, per_member), [list(p) for p in state[LINEAGE]]


def values(cfg: TrainConfig, rules: pbt.Rules) -> dict[str, Any]:
    """The perturbed settings active in ``cfg`` (an inactive one, e.g. a constant schedule's temperature, is not
    perturbed and not recorded)."""
    config = cfg.to_dict()
    return {name: config[name] for name in rules.perturb if rules.ranges[name].active(config)}


def ranked_pairs(rules: pbt.Rules, epoch: int, metrics: dict[int, dict[str, Any]]) -> tuple[dict[int, int], Any]:
    """``{loser: winner}`` positions among the members of ``metrics`` (ranked on their epoch metrics), and the
    step's random generator for explore (drawn after the pairs, so both are fixed by the seed and the epoch)."""
    live = sorted(metrics)
    order = pbt.rank([[float(metrics[i][o]) for o in rules.objectives] for i in live], rules)
    rng = rules.rng(epoch)
    pairs = pbt.exploit_pairs(order, rules.fraction, rng)
    return {live[dst]: live[src] for dst, src in sorted(pairs.items())}, rng


def explored(cfg: TrainConfig, rules: pbt.Rules, rng: Any) -> TrainConfig:
    """``cfg`` with its active perturbed settings explored (``pbt.explore``)."""
    changes = pbt.explore(cfg.to_dict(), rules, rng)
    return cfg.replace(**changes) if changes else cfg


def learned_config(cfg: TrainConfig, lineage: Sequence[Sequence[float]]) -> TrainConfig:
    """``cfg`` with the lineage's lambda(t) and lr(t) as ``piecewise`` schedules: what ``train`` replays."""
    return cfg.replace(schedule="piecewise", lambda_points=pbt.step_points([lam for lam, _ in lineage]),
                       lr_schedule="piecewise", lr_points=pbt.step_points([lr for _, lr in lineage]))
