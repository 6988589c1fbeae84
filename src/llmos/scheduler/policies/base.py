"""The one interface every scheduling policy implements.

Contract
--------
A policy decides *order*, never mechanics. The model scheduler owns the queue, the slots and the
engine; at each step it asks the policy:

* :meth:`Policy.order` — the waiting requests in the order they should get a slot. The first one
  is admitted next (if the engine can take it); the position of each is shown to clients as its
  queue position. Must not mutate the items; may read the policy's own state. ``waiting`` is
  never empty when the scheduler asks for a pick, but ``order`` must accept an empty list.
* :meth:`Policy.victim` — given the request the policy wants to admit next and the running
  requests (all slots busy), which running request to preempt for it, or None. Policies that do
  not preempt return None (the default).

* :meth:`Policy.runnable` — which of the running requests feed tokens in the next engine step
  (default: all). A request left out keeps its slot and KV (it is *paused*, not preempted).

and tells it what happened, so stateful policies (round-robin pointer, fair-share counters) can
follow: :meth:`on_enqueue` (a request joined the queue; ``active`` are the tenants that already
had queued or running work), :meth:`on_admit` (a request got a slot), :meth:`on_tokens` (tokens
were served to a tenant's request in one engine step: prompt tokens read and tokens generated).

All calls come from one thread at a time (the scheduler holds its lock). ``now`` is the
scheduler's clock.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Collection, Sequence
from typing import ClassVar, Protocol, TypeVar

from llmos.types import TenantId


class Schedulable(Protocol):
    """What a policy may know about a request."""

    @property
    def request_id(self) -> str: ...

    @property
    def tenant(self) -> TenantId: ...

    @property
    def urgency(self) -> int:
        """0..9, higher is more urgent."""
        ...

    @property
    def arrival(self) -> float:
        """When the request was submitted (scheduler clock); kept across preemptions."""
        ...

    @property
    def seqno(self) -> int:
        """Submission order, unique and increasing: the FIFO tie-break."""
        ...

    @property
    def cost_hint(self) -> int:
        """Expected tokens of work (prompt plus the output budget), for estimates only."""
        ...


S = TypeVar("S", bound=Schedulable)


class Policy(ABC):
    """A scheduling policy; see the module docstring for the contract."""

    name: ClassVar[str]

    @abstractmethod
    def order(self, waiting: Sequence[S], now: float) -> list[S]:
        """The waiting requests, first to be admitted first."""

    def pick(self, waiting: Sequence[S], now: float) -> S:
        """The request to admit next; ``waiting`` must not be empty."""
        return self.order(waiting, now)[0]

    def victim(self, candidate: Schedulable, running: Sequence[S], now: float) -> S | None:
        """A running request to preempt so ``candidate`` can run now, or None."""
        return None

    def runnable(self, running: Sequence[S], now: float) -> list[S]:
        """The running requests that take part in the next step; the default is all of them."""
        return list(running)

    def on_enqueue(self, item: Schedulable, now: float, active: Collection[TenantId]) -> None:  # noqa: B027
        """``item`` joined the queue (new, or requeued after preemption)."""

    def on_admit(self, item: Schedulable, now: float) -> None:  # noqa: B027
        """``item`` got a slot."""

    def on_tokens(self, tenant: TenantId, prompt_tokens: int, output_tokens: int) -> None:  # noqa: B027
        """Tokens were served to ``tenant`` in one engine step."""

    def describe(self) -> dict[str, float]:
        """Policy state worth showing (e.g. fair-share counters); empty by default."""
        return {}
