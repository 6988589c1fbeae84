"""Priority by urgency, with aging so that low urgency never starves."""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

from llmos.errors import InvalidRequest
from llmos.scheduler.policies.base import Policy, S, Schedulable


class PriorityPolicy(Policy):
    """Highest *effective* urgency first; FIFO among equals.

    Effective urgency = urgency + waited / ``aging_seconds``: every ``aging_seconds`` in the queue
    is worth one urgency level, so a request of urgency 2 waiting behind an endless stream of
    urgency-8 work overtakes fresh arrivals after about ``6 * aging_seconds``.

    Preemption: the running request of least class urgency is preempted for a candidate of
    strictly higher class urgency *and* higher effective urgency. Aging alone never evicts running
    work (no back-and-forth), and a request that has aged past newcomers is not evicted by them
    either, so it cannot be starved by repeated preemption.

    Pausing: while a running request's effective urgency trails the highest class urgency among
    the running ones by ``pause_gap`` or more (``flex`` beside a ``priority`` request: 2 vs 8), it
    sits out the engine steps: it keeps its slot and KV but the urgent one gets the step to
    itself, so its latency stays close to an idle server's instead of sharing each step with a
    full batch. The paused request ages like a queued one, so it cannot be paused forever. The
    top is a class urgency, never an aged one: a request that waited long must not pause the
    others of its own class (under load that would leave one sequence per step).
    ``pause_gap=None`` turns pausing off.
    """

    name: ClassVar[str] = "priority"

    def __init__(self, aging_seconds: float = 10.0, pause_gap: float | None = 4.0) -> None:
        if aging_seconds <= 0:
            raise InvalidRequest("aging_seconds must be positive", param="aging_seconds")
        if pause_gap is not None and pause_gap <= 0:
            raise InvalidRequest("pause_gap must be positive", param="pause_gap")
        self.aging_seconds = aging_seconds
        self.pause_gap = pause_gap

    def effective_urgency(self, item: Schedulable, now: float) -> float:
        return item.urgency + max(0.0, now - item.arrival) / self.aging_seconds

    def order(self, waiting: Sequence[S], now: float) -> list[S]:
        return sorted(waiting, key=lambda r: (-self.effective_urgency(r, now), r.seqno))

    def runnable(self, running: Sequence[S], now: float) -> list[S]:
        if self.pause_gap is None or len(running) < 2:
            return list(running)
        top = max(r.urgency for r in running)
        return [r for r in running if self.effective_urgency(r, now) > top - self.pause_gap]

    def victim(self, candidate: Schedulable, running: Sequence[S], now: float) -> S | None:
        if not running:
            return None
        # Least urgent first; among equals the latest arrival (it has waited least and served least).
        weakest = min(running, key=lambda r: (r.urgency, -r.seqno))
        if weakest.urgency < candidate.urgency and self.effective_urgency(
            weakest, now
        ) < self.effective_urgency(candidate, now):
            return weakest
        return None
