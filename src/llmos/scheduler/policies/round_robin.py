"""Round-robin across tenants: one admission per tenant in turn, FIFO within a tenant."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import ClassVar

from llmos.scheduler.policies.base import Policy, S, Schedulable
from llmos.types import TenantId


class RoundRobinPolicy(Policy):
    """Tenants take turns in the order they first appeared; a tenant with nothing queued is skipped."""

    name: ClassVar[str] = "round_robin"

    def __init__(self) -> None:
        self._ring: list[TenantId] = []
        self._last: TenantId | None = None

    def on_enqueue(self, item: Schedulable, now: float, active: Collection[TenantId]) -> None:
        if item.tenant not in self._ring:
            self._ring.append(item.tenant)

    def on_admit(self, item: Schedulable, now: float) -> None:
        self._last = item.tenant

    def order(self, waiting: Sequence[S], now: float) -> list[S]:
        queues: dict[TenantId, list[S]] = {}
        for r in sorted(waiting, key=lambda r: r.seqno):
            queues.setdefault(r.tenant, []).append(r)
        ring = [t for t in self._ring if t in queues] + [t for t in queues if t not in self._ring]
        if self._last in self._ring:
            # Start with the first tenant after the one served last.
            pos = self._ring.index(self._last)
            after = [t for t in self._ring[pos + 1 :] + self._ring[: pos + 1] if t in queues]
            ring = after + [t for t in ring if t not in after]
        out: list[S] = []
        while len(out) < len(waiting):
            for t in ring:
                if queues[t]:
                    out.append(queues[t].pop(0))
        return out
