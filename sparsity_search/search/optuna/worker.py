"""One Optuna worker's loop: trials (or population rounds) until the study's budget is met in storage.

``launch`` and ``resume`` run it in-process or in worker processes (``launcher``); ``worker`` runs it alone.
"""

from __future__ import annotations

import logging
import time
from typing import Callable

import optuna
from optuna.trial import FrozenTrial, TrialState

from ...errors import DivergedError, SparsitySearchError
from .._base import RunSettings
from ..study_file import StudySpec
from .objective import Objective
from .population import run_population_round
from .promotion import is_continuation, promoting, queue_continuations
from .storage import fail_stale_trials, quiet_experimental, waiting_retries
from .study import finished_count, open_optuna_study

log = logging.getLogger(__name__)

WAIT_S = 2.0  # how often a worker with nothing to start re-reads the storage


def run_worker(spec: StudySpec, settings: RunSettings,
               on_trial: Callable[[optuna.Study], None] | None = None, salt: int = 0) -> None:
    """One worker's loop, until the study counts ``n_trials`` finished (complete or pruned) trials or the
    timeout passes. Counting happens in storage, so a resumed study never reruns a finished trial. While the
    trials still missing are all running elsewhere, the worker waits: they finish, or their worker died and
    the heartbeat fails them, and their retry (queued with the same parameters) is picked up here, even once the
    budget is met (an interrupted trial is always retried once). Workers
    that finish at the same instant may each start one more trial: the budget can be exceeded by workers - 1.
    With a population size K > 1 (``--population`` or the study file's ``population.size``) each round asks up to
    K trials and trains them together (``population.run_population_round``).
    With MO-ASHA's promotion a worker first resumes promotable paused trials (``promotion.queue_continuations``
    enqueues their continuations, one per trial or up to K for a population round, which the next asks pop), also
    once ``n_trials`` new trials have finished: continuations do not count, and the worker leaves only when no
    paused trial is promotable."""
    study = open_optuna_study(spec, settings.storage, create=False, worker=True)
    # A sampler seeded only by the study's seed would propose the same points again after a resume, and in
    # every concurrent worker: offset it by the trials already stored (and a per-process salt for workers).
    study.sampler = spec.make_sampler(seed=spec.seed + len(study.get_trials(deepcopy=False)) + salt)
    budget = settings.n_trials or spec.n_trials
    timeout = settings.timeout or spec.timeout
    deadline = None if timeout is None else time.monotonic() + timeout
    objective = Objective(spec, settings)
    population = settings.population or spec.population.size

    promotes = promoting(spec)

    def started(s: optuna.Study) -> int:
        """Trials that count against the budget: finished or running, continuations not counted."""
        running = s.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
        return finished_count(s) + sum(not is_continuation(t) for t in running)

    def covered(s: optuna.Study) -> bool:
        return budget is not None and started(s) >= budget and not waiting_retries(s)

    def promoted(s: optuna.Study) -> int:
        """Promotion: how many continuations wait for a worker (enqueued here, up to a round's size, if the rungs
        allow)."""
        return queue_continuations(s, spec, population) if promotes else 0

    def fail_stale() -> None:
        for number in fail_stale_trials(study, settings.storage, spec.heartbeat.grace_period):
            log.warning("trial %d lost its worker: failed, and queued once more from its checkpoint", number)

    def failing(s: optuna.Study) -> bool:  # every trial failing (a broken setting) must not loop forever
        failed = s.get_trials(deepcopy=False, states=(TrialState.FAIL,))
        # trials whose worker was killed (no fail_reason; they are retried) say nothing about the settings
        return budget is not None and sum("fail_reason" in t.user_attrs for t in failed) >= budget

    def after_trial(s: optuna.Study, _: FrozenTrial) -> None:
        fail_stale()
        if on_trial is not None:
            on_trial(s)
        pending = promoted(s)  # before the next ask: a promotable paused trial goes before a new one
        if failing(s) or (covered(s) and not pending):
            s.stop()

    while deadline is None or time.monotonic() < deadline:
        fail_stale()  # before counting: a dead worker's trial becomes a queued retry
        pending = promoted(study)  # promotion: resuming a paused trial comes before the budget and the sampler
        if budget is not None and finished_count(study) >= budget and not pending and not waiting_retries(study):
            return
        if failing(study):
            raise SparsitySearchError(f"study {spec.name!r}: as many trials failed as the budget asks for "
                                      f"({budget}); `status` shows why")
        if covered(study) and not pending:
            time.sleep(min(WAIT_S, spec.heartbeat.interval))
            continue
        if population > 1:
            with quiet_experimental():
                run_population_round(study, objective, population, None if budget is None else
                                     max(budget - started(study), waiting_retries(study) + pending))
            fail_stale()
            if on_trial is not None:
                on_trial(study)
            continue
        remaining = None if deadline is None else max(deadline - time.monotonic(), 0.0)
        study.optimize(objective, timeout=remaining, callbacks=[after_trial], catch=(DivergedError,),
                       gc_after_trial=False)
