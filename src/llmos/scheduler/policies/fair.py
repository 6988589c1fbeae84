"""Weighted fair sharing of tokens between tenants: the Virtual Token Counter.

From Sheng et al., "Fairness in Serving Large Language Models" (OSDI '24). Each tenant has a
counter of the service it received, in weighted tokens: ``prompt_cost * prompt + output_cost *
output`` divided by the tenant's weight (the paper uses costs 1 and 2). The tenant with the lowest
counter gets the next free slot. A tenant that becomes active (nothing queued or running) is
lifted to the lowest counter among the active tenants, so idling banks no credit; if no one else
is active it is lifted to the highest counter seen (the paper lifts it to the counter of the tenant
that left last, which is at most that; with no one else active either choice is harmless).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from typing import ClassVar

from llmos.errors import InvalidRequest
from llmos.scheduler.policies.base import Policy, S, Schedulable
from llmos.types import TenantId


class FairPolicy(Policy):
    """Lowest virtual token counter first; FIFO within a tenant; never preempts."""

    name: ClassVar[str] = "fair"

    def __init__(
        self,
        weights: Mapping[TenantId, float] | None = None,
        *,
        prompt_cost: float = 1.0,
        output_cost: float = 2.0,
        default_weight: float = 1.0,
    ) -> None:
        self.weights = dict(weights or {})
        for tenant, w in [*self.weights.items(), ("default", default_weight)]:
            if w <= 0:
                raise InvalidRequest(f"tenant weight for {tenant!r} must be positive", param="tenant_weights")
        self.prompt_cost = prompt_cost
        self.output_cost = output_cost
        self.default_weight = default_weight
        self.counters: dict[TenantId, float] = {}
        self._floor = 0.0

    def weight(self, tenant: TenantId) -> float:
        return self.weights.get(tenant, self.default_weight)

    def on_enqueue(self, item: Schedulable, now: float, active: Collection[TenantId]) -> None:
        tenant = item.tenant
        if tenant in active:
            return
        others = [self.counters.get(t, 0.0) for t in active if t != tenant]
        lift = min(others) if others else self._floor
        self.counters[tenant] = max(self.counters.get(tenant, 0.0), lift)

    def on_tokens(self, tenant: TenantId, prompt_tokens: int, output_tokens: int) -> None:
        served = (self.prompt_cost * prompt_tokens + self.output_cost * output_tokens) / self.weight(tenant)
        c = self.counters.get(tenant, 0.0) + served
        self.counters[tenant] = c
        self._floor = max(self._floor, c)

    def order(self, waiting: Sequence[S], now: float) -> list[S]:
        queues: dict[TenantId, list[S]] = {}
        for r in sorted(waiting, key=lambda r: r.seqno):
            queues.setdefault(r.tenant, []).append(r)
        # Simulate the counters forward with each request's expected cost, to rank the whole queue.
        virtual = {t: self.counters.get(t, 0.0) for t in queues}
        out: list[S] = []
        while len(out) < len(waiting):
            t = min((t for t in queues if queues[t]), key=lambda t: (virtual[t], queues[t][0].seqno))
            r = queues[t].pop(0)
            out.append(r)
            virtual[t] += self.output_cost * max(1, r.cost_hint) / self.weight(t)
        return out

    def describe(self) -> dict[str, float]:
        return dict(self.counters)
