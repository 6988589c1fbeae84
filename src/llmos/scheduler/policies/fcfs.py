"""First come, first served: submission order, nothing else."""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

from llmos.scheduler.policies.base import Policy, S


class FcfsPolicy(Policy):
    """Admit in submission order; never preempt. Urgency and tenant are ignored."""

    name: ClassVar[str] = "fcfs"

    def order(self, waiting: Sequence[S], now: float) -> list[S]:
        return sorted(waiting, key=lambda r: r.seqno)
