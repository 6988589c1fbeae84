"""Admission control: bounded queues per model and per tenant, with Retry-After estimates.

A request is refused at submit, never queued without bound:

* the tenant already has ``max_queue_per_tenant`` requests waiting → :class:`RateLimited` (429),
  ``retry_after`` = expected time for the tenant's excess to drain;
* the model's queue holds ``max_queue`` requests → :class:`Overloaded` (503), ``retry_after`` =
  expected time for one request to leave the slots;
* the model is stopping → :class:`Overloaded`.

It decides from counts, wherever they come from: the engine core's client checks a request the
moment it is submitted, against the queue lengths its core last published plus the requests
sent since (:mod:`llmos.core.client`), so the answer never waits on the core.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from llmos.errors import InvalidRequest, Overloaded, RateLimited
from llmos.types import TenantId

MIN_RETRY_AFTER_S = 1.0
MAX_RETRY_AFTER_S = 600.0


def _clamp(seconds: float) -> float:
    return float(min(MAX_RETRY_AFTER_S, max(MIN_RETRY_AFTER_S, math.ceil(seconds))))


class AdmissionControl:
    """``drain_time(n)``: expected seconds until ``n`` requests leave the slots (for Retry-After),
    e.g. :meth:`llmos.scheduler.queue_model.QueueModel.drain_time`."""

    def __init__(self, max_queue: int, max_queue_per_tenant: int, drain_time: Callable[[int], float]) -> None:
        if max_queue < 1 or max_queue_per_tenant < 1:
            raise InvalidRequest("queue bounds must be at least 1", param="max_queue")
        self.max_queue = max_queue
        self.max_queue_per_tenant = max_queue_per_tenant
        self._drain_time = drain_time

    def check(
        self, tenant: TenantId, queued_total: int, queued_tenant: int, *, accepting: bool = True
    ) -> None:
        """Raise if a new request of ``tenant`` may not join the queue now."""
        if not accepting:
            raise Overloaded("the model is shutting down; retry on another server", retry_after=_clamp(5.0))
        if queued_tenant >= self.max_queue_per_tenant:
            excess = queued_tenant - self.max_queue_per_tenant + 1
            raise RateLimited(
                f"tenant {tenant!r} has {queued_tenant} requests queued (limit {self.max_queue_per_tenant})",
                retry_after=_clamp(self._drain_time(excess)),
            )
        if queued_total >= self.max_queue:
            raise Overloaded(
                f"the model's queue is full ({queued_total} requests waiting)",
                retry_after=_clamp(self._drain_time(1)),
            )
