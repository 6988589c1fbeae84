"""What happened to a request inside a model scheduler, for observers (metrics, tests)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from llmos.types import TenantId

EventKind = Literal["queue", "admit", "restore", "preempt", "finish", "timeout", "cancel", "fail", "reject"]


@dataclass(frozen=True)
class SchedulerEvent:
    kind: EventKind
    request_id: str
    tenant: TenantId
    at: float
    """The scheduler's clock."""
    detail: str = ""
