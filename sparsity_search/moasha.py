"""The promotion rule of MO-ASHA, as pure functions a scheduler can call.

MO-ASHA (Schmucker et al. 2021, arXiv:2106.12639) is asynchronous successive halving in which the decision
at each rung ranks the trials by non-dominated sorting instead of by one metric, and breaks ties inside the
last admitted front with an epsilon-net, so the survivors spread along the trade-off rather than cluster.
The scheduler (Optuna pruner or Ray scheduler) owns the bookkeeping; this module only decides.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence

import numpy as np

from sparsity_search.pareto import Direction, nondominated_ranks, normalize

TrialId = Hashable
RungRecords = Sequence[tuple[TrialId, Sequence[float]]]


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


def rank_records(rung_records: RungRecords, directions: Sequence[Direction]) -> list[TrialId]:
    """Trial ids at one rung, best first: by non-dominated front, and inside a front by epsilon-net order.

    The epsilon-net works on objectives min-max scaled to [0, 1] over all records at the rung (missing
    values at 1, the worst end). It starts from the best point of the first objective (ties: the next
    objectives, then record order), then repeatedly takes the point farthest (Euclidean) from all points
    already taken (ties: earliest record). Duplicates are therefore taken last. Deterministic.
    """
    ids = [trial_id for trial_id, _ in rung_records]
    if len(set(ids)) != len(ids):
        raise ValueError(f"a trial is recorded twice at the same rung: {ids}")
    if not ids:
        return []
    values = np.array([np.asarray(v, dtype=float) for _, v in rung_records])
    ranks = nondominated_ranks(values, directions)
    z = _unit_scale(normalize(values, directions))
    order: list[int] = []
    for rank in range(int(ranks.max()) + 1):
        members = np.flatnonzero(ranks == rank)
        order.extend(int(members[i]) for i in _epsilon_net(z[members]))
    return [ids[i] for i in order]


def should_continue(
    rung_records: RungRecords, trial_id: TrialId, directions: Sequence[Direction], reduction_factor: int
) -> bool:
    """Whether ``trial_id`` (already in ``rung_records``) may train past this rung.

    With n records it continues if it is among the first max(1, n // reduction_factor) of :func:`rank_records`:
    the first arrival at a rung continues alone, the second only if it ranks first, and so on. This is the
    stopping semantics of Ray Tune's asynchronous HyperBand (its percentile cutoff over two recorded values
    stops the worse one): nobody waits for a rung to fill, and no early arrival trains to the end unjudged.
    """
    if not isinstance(reduction_factor, int) or reduction_factor < 2:
        raise ValueError(f"reduction_factor must be an integer >= 2, got {reduction_factor!r}")
    ids = [t for t, _ in rung_records]
    if trial_id not in ids:
        raise ValueError(f"trial {trial_id!r} has no record at this rung")
    return trial_id in rank_records(rung_records, directions)[: max(1, len(ids) // reduction_factor)]


def _unit_scale(v: np.ndarray) -> np.ndarray:
    fin = np.isfinite(v)
    lo = np.where(fin, v, np.inf).min(axis=0)
    hi = np.where(fin, v, -np.inf).max(axis=0)
    lo, hi = np.where(np.isfinite(lo), lo, 0.0), np.where(np.isfinite(hi), hi, 0.0)
    z = (np.where(fin, v, lo) - lo) / np.where(hi > lo, hi - lo, 1.0)
    return np.where(fin, z, 1.0)


def _epsilon_net(z: np.ndarray) -> list[int]:
    # Greedy farthest-point order (Clarkson 2005), as in the MO-ASHA paper's EpsNet.
    first = int(np.lexsort(z.T[::-1])[0])
    order = [first]
    dist = np.linalg.norm(z - z[first], axis=1)
    dist[first] = -1.0
    for _ in range(len(z) - 1):
        nxt = int(np.argmax(dist))
        order.append(nxt)
        dist = np.minimum(dist, np.linalg.norm(z - z[nxt], axis=1))
        dist[nxt] = -1.0
    return order
