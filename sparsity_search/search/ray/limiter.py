"""The concurrency limit of a Ray study: trials that hold a slot, not trials that exist.

Tune's ``ConcurrencyLimiter`` counts every suggested trial until it completes, paused ones included: with
promotion-type MO-ASHA and all ``max_concurrent`` trials paused at rungs, none promotable, it would never suggest
another trial and the experiment would hang. Tune's own way out (``HyperBandForBOHB``) is the searcher hooks
``on_pause`` / ``on_unpause``, which the scheduler calls; this limiter honours them: a paused trial frees its slot,
an unpaused one takes a slot again. The promotion scheduler unpauses a paused trial here as soon as it is promotable,
before Tune restarts it, so the freed slot goes to that trial and not to a new one.

It stays a ``ConcurrencyLimiter`` (Tune sizes its queue of pending trials by ``max_concurrent`` only for one), and its
paused set is saved with the searcher in Tune's experiment snapshots, like the live trials it counts.
"""

from __future__ import annotations

import logging
from typing import Any

from ray.tune.search import ConcurrencyLimiter, Searcher

log = logging.getLogger(__name__)


class RunningLimiter(ConcurrencyLimiter):
    """``ConcurrencyLimiter`` that counts only trials that are not paused."""

    def __init__(self, searcher: Searcher, max_concurrent: int):
        super().__init__(searcher, max_concurrent=max_concurrent)
        self.paused: set[str] = set()

    def holding(self) -> int:
        """Trials that hold a slot: suggested, not complete, not paused."""
        return len(self.live_trials - self.paused)

    def suggest(self, trial_id: str) -> dict[str, Any] | str | None:
        if self.holding() >= self.max_concurrent:
            log.debug("no suggestion for %s: %d of %d slots held", trial_id, self.holding(), self.max_concurrent)
            return None
        suggestion = self.searcher.suggest(trial_id)
        if suggestion not in (None, Searcher.FINISHED):
            self.live_trials.add(trial_id)
            self.num_unfinished_live_trials += 1
        return suggestion

    def on_trial_complete(self, trial_id: str, result: dict[str, Any] | None = None, error: bool = False) -> None:
        self.paused.discard(trial_id)
        super().on_trial_complete(trial_id, result=result, error=error)

    # Not passed on to the searcher, as ConcurrencyLimiter does: only TuneBOHB has these hooks, OptunaSearch has not.
    def on_pause(self, trial_id: str) -> None:
        if trial_id in self.live_trials:
            self.paused.add(trial_id)

    def on_unpause(self, trial_id: str) -> None:
        self.paused.discard(trial_id)
