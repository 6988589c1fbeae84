"""Every residency decision as an event, kept in a bounded in-memory ring and logged.

Kinds: ``load`` (a model became resident), ``evict`` (unloaded to make room for ``for_model``),
``expire`` (its keep-alive passed while idle, or was 0), ``unload`` (asked for explicitly, or at
shutdown), ``reject`` (a model could not fit; nothing was evicted), ``load_failed``; in cluster
mode also ``scale_up`` / ``scale_down`` (the autoscaler's or an operator's decision, with its
reason), ``replica_started``, ``replica_died`` and ``replica_failed`` (a replica could not start).
"""

from __future__ import annotations

import logging
from collections import deque
from dataclasses import dataclass
from typing import Literal

log = logging.getLogger(__name__)

EventKind = Literal[
    "load",
    "evict",
    "expire",
    "unload",
    "reject",
    "load_failed",
    "scale_up",
    "scale_down",
    "replica_started",
    "replica_died",
    "replica_failed",
]


@dataclass(frozen=True)
class ResourceEvent:
    at: float
    """Wall-clock time (seconds since the epoch)."""
    kind: EventKind
    model: str
    reason: str
    bytes: int = 0
    """Bytes freed (evict/expire/unload), taken (load) or asked for (reject)."""
    for_model: str | None = None
    """The model that needed the space (evict)."""


class EventLog:
    """The last ``capacity`` events, oldest first."""

    def __init__(self, capacity: int = 256) -> None:
        self._ring: deque[ResourceEvent] = deque(maxlen=max(1, capacity))

    def record(self, event: ResourceEvent) -> None:
        self._ring.append(event)
        level = (
            logging.WARNING
            if event.kind in ("reject", "load_failed", "replica_died", "replica_failed")
            else logging.INFO
        )
        log.log(
            level,
            "resources %s model=%s bytes=%d for=%s: %s",
            event.kind,
            event.model,
            event.bytes,
            event.for_model or "-",
            event.reason,
        )

    def recent(self, limit: int | None = None) -> list[ResourceEvent]:
        events = list(self._ring)
        return events if limit is None else events[-limit:] if limit > 0 else []

    def __len__(self) -> int:
        return len(self._ring)
