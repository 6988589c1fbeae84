"""Plain schedulable items for policy tests (no engine, no scheduler)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Item:
    request_id: str
    tenant: str = "t"
    urgency: int = 5
    arrival: float = 0.0
    seqno: int = 0
    cost_hint: int = 10


def items(*specs: tuple[str, str, int, float]) -> list[Item]:
    """Items from ``(request_id, tenant, urgency, arrival)``, numbered in order."""
    return [Item(rid, tenant, urg, arr, i) for i, (rid, tenant, urg, arr) in enumerate(specs)]


def ids(xs: list[Item]) -> list[str]:
    return [x.request_id for x in xs]
