"""The scheduler's record of one request, from submit to its last output."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field
from typing import Literal

from llmos.engine.base import SeqOutput, SeqSnapshot
from llmos.scheduler.request import GenerationRequest
from llmos.types import SeqId, TenantId

TicketPhase = Literal["queued", "running", "preempted", "done"]
Delivery = SeqOutput | BaseException


@dataclass(eq=False)
class Ticket:
    """Mutable state of one request; guarded by the scheduler's lock. Satisfies ``Schedulable``."""

    request: GenerationRequest
    seqno: int
    arrival: float
    loop: asyncio.AbstractEventLoop
    outbox: asyncio.Queue[Delivery]
    phase: TicketPhase = "queued"
    snapshot: SeqSnapshot | None = None
    prefill_remaining: int = 0
    cached_tokens: int = 0
    first_admitted_at: float | None = None
    slot_since: float = 0.0
    service_s: float = 0.0
    completion_tokens: int = 0
    produced: bool = False
    cancelled: bool = False
    position: int | None = None
    est_start_at: float | None = None
    done: bool = field(default=False)

    @property
    def request_id(self) -> str:
        return self.request.request_id

    @property
    def seq_id(self) -> SeqId:
        return self.request.spec.seq_id

    @property
    def tenant(self) -> TenantId:
        return self.request.cls.tenant

    @property
    def urgency(self) -> int:
        return self.request.cls.urgency

    @property
    def deadline(self) -> float | None:
        return self.request.cls.deadline

    @property
    def cost_hint(self) -> int:
        return len(self.request.spec.prompt) + self.request.spec.params.max_tokens

    @property
    def kv_need(self) -> int:
        """KV cells the engine must have free to take this request now."""
        if self.snapshot is not None:
            return len(self.snapshot.kv_tokens) + self.prefill_remaining
        return len(self.request.spec.prompt)

    def deliver(self, item: Delivery) -> None:
        """Hand an output or an error to the consumer's event loop (any thread)."""
        # A closed loop raises RuntimeError: its consumer is gone, nobody is listening any more.
        with contextlib.suppress(RuntimeError):
            self.loop.call_soon_threadsafe(self.outbox.put_nowait, item)
