"""The scheduler's record of one request, from ``add`` to its last output."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from llmos.engine.base import SeqSnapshot
from llmos.scheduler.request import GenerationRequest
from llmos.types import SeqId, TenantId

TicketPhase = Literal["queued", "running", "preempted", "done"]


@dataclass(eq=False)
class Ticket:
    """Mutable state of one request, owned by its scheduler. Satisfies ``Schedulable``."""

    request: GenerationRequest
    seqno: int
    arrival: float
    phase: TicketPhase = "queued"
    snapshot: SeqSnapshot | None = None
    prefill_remaining: int = 0
    cached_tokens: int = 0
    first_admitted_at: float | None = None
    slot_since: float = 0.0
    service_s: float = 0.0
    steps: int = 0
    """Engine steps this request ran in (the queueing model's measure of its work)."""
    completion_tokens: int = 0
    produced: bool = False
    cancelled: bool = False
    position: int | None = None
    est_start_at: float | None = None

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
    def done(self) -> bool:
        return self.phase == "done"

    @property
    def cost_hint(self) -> int:
        return len(self.request.spec.prompt) + self.request.spec.params.max_tokens

    @property
    def kv_need(self) -> int:
        """KV cells the engine must have free to take this request now."""
        if self.snapshot is not None:
            return len(self.snapshot.kv_tokens) + self.prefill_remaining
        return len(self.request.spec.prompt)
