"""MO-ASHA's rung rule in its two forms, stopping and promotion, as pure functions a scheduler can call.

MO-ASHA (Schmucker et al. 2021, arXiv:2106.12639) is asynchronous successive halving in which the decision
at each rung ranks the trials by non-dominated sorting instead of by one metric. Inside the last admitted front
a tie-break decides. The paper's epsilon-net spreads survivors along the trade-off, starting from the best
first objective; with few survivors per rung (one of every reduction_factor) that promotes the front's ends,
the densest accurate net and the silent one. The default here, greedy hypervolume contribution, promotes the
trial that adds most to the front first; how the two compare is measured by ``benchmarks/moasha_replay.py``
and ``benchmarks/search_efficiency.py --tie-break`` (docs/benchmarks.md).

Two forms of the rule share the ranking. Stopping (:func:`should_continue`, Ray Tune's asynchronous HyperBand):
a trial at a rung either trains on or ends there for good. Promotion (:func:`promotable`, ASHA as Li et al. 2020
define it): a trial at a rung pauses, and a free worker resumes the best paused trial that now ranks in the top
1 / reduction_factor of its rung before it starts a new one. Replayed, promotion reached the target with about
0.65x the epochs of full-fidelity search against stopping's 0.91x.
Constraint-aware ranking (``limits``) puts every record that misses a limit (``constraints.min_accuracy``)
after every feasible one, Deb's constrained domination.
The scheduler (Optuna pruner or Ray scheduler) owns the bookkeeping; this module only decides.
"""

from __future__ import annotations

import heapq
from collections.abc import Collection, Hashable, Mapping, Sequence
from typing import Literal

import numpy as np

from sparsity_search.pareto import Direction, hypervolume, nondominated_ranks, normalize

TrialId = Hashable
RungRecords = Sequence[tuple[TrialId, Sequence[float]]]
TieBreak = Literal["hypervolume", "epsilon_net"]
Limits = Sequence[float | None]
TIE_BREAKS: tuple[TieBreak, ...] = ("hypervolume", "epsilon_net")
# Reference of the hypervolume tie-break in rung-scaled units: the rung's worst values pushed out by a tenth of
# their range, so the trials at the ends of the front still add volume (the usual nadir + 10 % rule).
_HV_REFERENCE = 1.1


def rung_epochs(min_epochs: int, reduction_factor: int, max_epochs: int) -> list[int]:
    """Epochs at which trials are compared: min_epochs * rf**k for every k with a value below max_epochs.

    ``max_epochs`` itself is not a rung: a trial that gets there is finished, there is nothing to decide.
    """
    if min_epochs < 1 or reduction_factor < 2:
        raise ValueError(f"need min_epochs >= 1 and reduction_factor >= 2, got {min_epochs}, {reduction_factor}")
    rungs: list[int] = []
    epoch = min_epochs
    while epoch < max_epochs:
        rungs.append(epoch)
        epoch *= reduction_factor
    return rungs


def rank_records(rung_records: RungRecords, directions: Sequence[Direction],
                 tie_break: TieBreak = "hypervolume", limit: int | None = None,
                 limits: Limits | None = None) -> list[TrialId]:
    """Trial ids at one rung, best first: by non-dominated front, and inside a front by ``tie_break`` order.

    With ``limit`` only the first ``limit`` ids are ranked and returned (a rung decision needs no more).

    ``limits`` (one entry per objective, None where unconstrained: a minimum for a maximised objective, a maximum
    for a minimised one, e.g. ``[min_accuracy, None]``) ranks by Deb's constrained domination: every feasible
    record (within all limits) before every infeasible one; the feasible ones as without limits (scaled among
    themselves); the infeasible ones by their total violation (the sum of the amounts past each limit, a missing
    value violating without bound), ties in record order. So a collapsed near-silent net below the accuracy
    floor is never promoted while a feasible trial waits.

    Both tie-breaks work on objectives min-max scaled to [0, 1] over all records at the rung, 0 the best end,
    and are deterministic.

    - ``hypervolume``: greedy hypervolume subset selection. Take first the member with the largest box
      between it and the reference point (1.1 in every scaled objective), then repeatedly the member that adds
      most volume to the members already taken from its front (ties: earliest record). Duplicates, and members
      with a missing value (placed at the reference), add nothing and go last.
    - ``epsilon_net`` (the MO-ASHA paper's): missing values at 1, the worst end. Start from the best point of
      the first objective (ties: the next objectives, then record order), then repeatedly take the point
      farthest (Euclidean) from all points already taken (ties: earliest record). Duplicates are therefore
      taken last.
    """
    if tie_break not in TIE_BREAKS:
        raise ValueError(f"tie_break must be one of {TIE_BREAKS}, got {tie_break!r}")
    ids = [trial_id for trial_id, _ in rung_records]
    if len(set(ids)) != len(ids):
        raise ValueError(f"a trial is recorded twice at the same rung: {ids}")
    if not ids:
        return []
    values = np.array([np.asarray(v, dtype=float) for _, v in rung_records])
    wanted = len(ids) if limit is None else min(limit, len(ids))
    if limits is None:
        return [ids[i] for i in _rank(values, directions, tie_break, wanted)]
    violation = _violation(values, directions, limits)
    feasible = np.flatnonzero(violation == 0)
    order = [int(feasible[i]) for i in _rank(values[feasible], directions, tie_break, wanted)]
    infeasible = np.flatnonzero(violation > 0)
    order += [int(i) for i in infeasible[np.argsort(violation[infeasible], kind="stable")]]
    return [ids[i] for i in order[:wanted]]


def _rank(values: np.ndarray, directions: Sequence[Direction], tie_break: TieBreak, wanted: int) -> list[int]:
    """Row indices of the first ``wanted`` rows by non-dominated front, then ``tie_break`` inside a front."""
    if not len(values):
        return []
    ranks = nondominated_ranks(values, directions)
    v = normalize(values, directions)
    z = _unit_scale(v)
    order_front = _epsilon_net
    if tie_break == "hypervolume":
        z[~np.isfinite(v)] = _HV_REFERENCE  # a missing value adds no volume: that trial goes last in its front
        order_front = _hypervolume_order
    order: list[int] = []
    for rank in range(int(ranks.max()) + 1):
        if len(order) >= wanted:
            break
        members = np.flatnonzero(ranks == rank)
        order.extend(int(members[i]) for i in order_front(z[members], wanted - len(order)))
    return order


def _violation(values: np.ndarray, directions: Sequence[Direction], limits: Limits) -> np.ndarray:
    """Per record, the total amount by which it misses ``limits`` (0: feasible; a missing value: inf)."""
    if len(limits) != len(directions):
        raise ValueError(f"limits needs one entry per objective ({len(directions)}), got {len(limits)}")
    bound = np.array([np.nan if x is None else x for x in limits], dtype=float).reshape(1, -1)
    b = normalize(bound, directions)[0]  # minimised like the values; an unconstrained objective is +inf
    limited = np.isfinite(b)
    v = normalize(values, directions)[:, limited]  # a missing value is +inf: it misses without bound
    return np.clip(v - b[limited], 0.0, None).sum(axis=1)


def should_continue(
    rung_records: RungRecords, trial_id: TrialId, directions: Sequence[Direction], reduction_factor: int,
    tie_break: TieBreak = "hypervolume", limits: Limits | None = None,
) -> bool:
    """Whether ``trial_id`` (already in ``rung_records``) may train past this rung: the stopping form of the rule.

    With n records it continues if it is among the first max(1, n // reduction_factor) of :func:`rank_records`:
    the first arrival at a rung continues alone, the second only if it ranks first, and so on. This is the
    stopping semantics of Ray Tune's asynchronous HyperBand (its percentile cutoff over two recorded values
    stops the worse one): nobody waits for a rung to fill, and no early arrival trains to the end unjudged.
    """
    _check_rf(reduction_factor)
    ids = [t for t, _ in rung_records]
    if trial_id not in ids:
        raise ValueError(f"trial {trial_id!r} has no record at this rung")
    top = rank_records(rung_records, directions, tie_break, limit=max(1, len(ids) // reduction_factor),
                       limits=limits)
    return trial_id in top


def promotable(
    rungs: Mapping[int, RungRecords], paused: Collection[TrialId], directions: Sequence[Direction],
    reduction_factor: int, tie_break: TieBreak = "hypervolume", limits: Limits | None = None,
) -> tuple[TrialId, int] | None:
    """The paused trial a free worker should resume, and the rung it is paused at; None: start a new trial.

    The promotion form of the rule (ASHA, Li et al. 2020, with MO-ASHA's ranking): a trial that reaches a rung
    records its values there and pauses. ``rungs`` maps each rung epoch to its records (every trial that ever
    reached it, paused, promoted or finished); ``paused`` holds the trials waiting to be resumed, each paused at
    the highest rung where it has a record. Rungs are checked from the highest down; at a rung with n records
    the first n // reduction_factor of :func:`rank_records` (with ``tie_break`` and ``limits``) are its top, and
    the first paused one of them, in that order, is the answer. So a rung promotes nobody before it holds
    reduction_factor records (decisions wait for evidence), a trial that later arrivals push out of the top
    stays paused, and one that ranks into the top as the rung fills is promoted then. Ties inside a front follow
    ``rank_records`` (the earliest record first among equal contributions); equal-quality candidates at
    different rungs go to the higher rung.

    A worker whose trial just arrived at a rung asks with that trial counted as paused: if the answer is that
    trial, it trains on without pausing (what pausing and at once resuming it would do).
    """
    _check_rf(reduction_factor)
    rung_of = {t: epoch for epoch in sorted(rungs) for t, _ in rungs[epoch]}  # the highest rung wins
    for epoch in sorted(rungs, reverse=True):
        records = rungs[epoch]
        top = rank_records(records, directions, tie_break, limit=len(records) // reduction_factor, limits=limits)
        chosen = next((t for t in top if t in paused and rung_of[t] == epoch), None)
        if chosen is not None:
            return chosen, epoch
    return None


def _check_rf(reduction_factor: int) -> None:
    if not isinstance(reduction_factor, int) or reduction_factor < 2:
        raise ValueError(f"reduction_factor must be an integer >= 2, got {reduction_factor!r}")


def _unit_scale(v: np.ndarray) -> np.ndarray:
    fin = np.isfinite(v)
    lo = np.where(fin, v, np.inf).min(axis=0)
    hi = np.where(fin, v, -np.inf).max(axis=0)
    lo, hi = np.where(np.isfinite(lo), lo, 0.0), np.where(np.isfinite(hi), hi, 0.0)
    z = (np.where(fin, v, lo) - lo) / np.where(hi > lo, hi - lo, 1.0)
    return np.where(fin, z, 1.0)


def _epsilon_net(z: np.ndarray, count: int) -> list[int]:
    # Greedy farthest-point order (Clarkson 2005), as in the MO-ASHA paper's EpsNet.
    first = int(np.lexsort(z.T[::-1])[0])
    order = [first]
    dist = np.linalg.norm(z - z[first], axis=1)
    dist[first] = -1.0
    for _ in range(min(count, len(z)) - 1):
        nxt = int(np.argmax(dist))
        order.append(nxt)
        dist = np.minimum(dist, np.linalg.norm(z - z[nxt], axis=1))
        dist[nxt] = -1.0
    return order


def _hypervolume_order(z: np.ndarray, count: int) -> list[int]:
    # Greedy hypervolume subset selection (as in SMS-EMOA / HypE, forwards): each step takes the largest gain,
    # the earliest record among equal gains. Two objectives: all gains at once per step. More: lazily, since a
    # candidate's gain only shrinks as others are taken (hypervolume is submodular), so a stale gain is an upper
    # bound and only the candidate on top of the heap needs recomputing; the order is the eager one.
    if z.shape[1] == 2:
        order: list[int] = []
        left = list(range(len(z)))
        while left and len(order) < count:
            gains = np.round(_gains_2d(z[order], z[left]), 12)
            order.append(left.pop(int(np.argmax(gains))))
        return order
    heap = [(-_gain(z[:0], c), i) for i, c in enumerate(z)]
    heapq.heapify(heap)
    order = []
    while heap and len(order) < count:
        _, i = heapq.heappop(heap)
        entry = (-_gain(z[order], z[i]), i)
        if not heap or entry <= heap[0]:
            order.append(i)
        else:
            heapq.heappush(heap, entry)
    return order


def _gain(taken: np.ndarray, candidate: np.ndarray) -> float:
    """Volume ``candidate`` would add to ``taken`` (scaled objectives, minimised, reference 1.1): its box less
    the part of it that ``taken`` already covers (each taken point clipped into the box)."""
    d = len(candidate)
    box = float(np.prod(_HV_REFERENCE - candidate))
    covered = hypervolume(np.maximum(taken, candidate), ["minimize"] * d, [_HV_REFERENCE] * d) if len(taken) else 0.0
    return round(box - covered, 12)


def _gains_2d(taken: np.ndarray, candidates: np.ndarray) -> np.ndarray:
    # The taken points' staircase as strips along x: before the first x the free height reaches the reference,
    # after each x it is the lowest y so far. A candidate gains, per strip right of it, width x free height above it.
    by_x = taken[np.argsort(taken[:, 0], kind="stable")]
    xs = by_x[:, 0]
    left = np.concatenate([[-np.inf], xs])
    right = np.concatenate([xs, [_HV_REFERENCE]])
    height = np.concatenate([[_HV_REFERENCE], np.minimum.accumulate(by_x[:, 1])])
    width = np.clip(right[None, :] - np.maximum(left[None, :], candidates[:, :1]), 0.0, None)
    return (width * np.clip(height[None, :] - candidates[:, 1:], 0.0, None)).sum(axis=1)
