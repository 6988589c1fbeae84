"""The default policy: urgency tiers with aging, weighted fair share between tenants in a tier.

It keeps both promises a client can ask for, in this order:

1. **Urgency.** A request's tier is its urgency (``service_tier``: ``priority`` 8, ``default`` 5,
   ``flex`` 2, or an explicit ``priority``). The next free slot goes to the tier with the highest
   *aged* urgency: its urgency plus the wait of its longest-waiting request over
   ``aging_seconds``, so a tier that has waited long enough overtakes more urgent ones and
   nothing starves (``flex`` behind sustained ``priority`` load gets a slot after about
   ``(8 - 2) * aging_seconds``). Ties go to the more urgent tier.
2. **Fairness within a tier.** Inside the chosen tier, the tenant with the lowest virtual token
   counter gets the slot (:class:`FairPolicy`'s VTC: weighted tokens served, counters shared by
   all tiers, an arriving tenant lifted to the lowest active counter); FIFO within a tenant.
   Aging never reorders one tier's tenants: that would let the tenant with the longest queue
   age ahead of the others and undo the fair share.

Preemption and pausing follow :class:`PriorityPolicy`'s rules on effective urgency: a running
request is preempted only for a candidate of strictly higher urgency that also has the higher
effective urgency (among the least urgent running requests, the one whose tenant has been served
most, then the latest arrival); a running request whose effective urgency trails the highest
urgency running by ``pause_gap`` levels sits out the engine steps, keeping its slot, until it
has aged back within the gap. Requests of one urgency never preempt or pause each other,
however long one of them has waited.
"""

from __future__ import annotations

import heapq
from collections.abc import Mapping, Sequence
from typing import ClassVar

from llmos.scheduler.policies.base import S, Schedulable
from llmos.scheduler.policies.fair import FairPolicy
from llmos.scheduler.policies.priority import PriorityPolicy
from llmos.types import TenantId


class TieredPolicy(FairPolicy):
    """Most urgent (aged) tier first, fair share between tenants within a tier. A
    :class:`FairPolicy` by inheritance: its counters, weights and ``describe()`` are the same."""

    name: ClassVar[str] = "tiered"

    def __init__(
        self,
        weights: Mapping[TenantId, float] | None = None,
        *,
        aging_seconds: float = 10.0,
        pause_gap: float | None = 4.0,
        prompt_cost: float = 1.0,
        output_cost: float = 2.0,
        default_weight: float = 1.0,
    ) -> None:
        super().__init__(
            weights, prompt_cost=prompt_cost, output_cost=output_cost, default_weight=default_weight
        )
        self.urgency = PriorityPolicy(aging_seconds=aging_seconds, pause_gap=pause_gap)

    @property
    def aging_seconds(self) -> float:
        return self.urgency.aging_seconds

    def effective_urgency(self, item: Schedulable, now: float) -> float:
        return self.urgency.effective_urgency(item, now)

    def order(self, waiting: Sequence[S], now: float) -> list[S]:
        tiers: dict[int, list[S]] = {}
        for r in waiting:
            tiers.setdefault(r.urgency, []).append(r)
        fair_order = super().order
        if len(tiers) <= 1:
            return fair_order(waiting, now)
        # Each tier's own fair order, merged: each next place goes to the tier that its
        # longest-waiting remaining request makes the most urgent.
        queues = {u: fair_order(items, now) for u, items in tiers.items()}
        # Sorted lists are heaps; a request already placed leaves its tier's heap when on top.
        oldest = {u: sorted((r.arrival, r.seqno) for r in items) for u, items in tiers.items()}
        taken = dict.fromkeys(queues, 0)
        placed: set[int] = set()
        out: list[S] = []
        while len(out) < len(waiting):
            live = [u for u in queues if taken[u] < len(queues[u])]
            for u in live:
                while oldest[u][0][1] in placed:
                    heapq.heappop(oldest[u])
            u = max(live, key=lambda u: (u + max(0.0, now - oldest[u][0][0]) / self.aging_seconds, u))
            r = queues[u][taken[u]]
            taken[u] += 1
            placed.add(r.seqno)
            out.append(r)
        return out

    def runnable(self, running: Sequence[S], now: float) -> list[S]:
        return self.urgency.runnable(running, now)

    def victim(self, candidate: Schedulable, running: Sequence[S], now: float) -> S | None:
        if not running:
            return None
        weakest = min(running, key=lambda r: (r.urgency, -self.counters.get(r.tenant, 0.0), -r.seqno))
        if weakest.urgency < candidate.urgency and self.effective_urgency(
            weakest, now
        ) < self.effective_urgency(candidate, now):
            return weakest
        return None
