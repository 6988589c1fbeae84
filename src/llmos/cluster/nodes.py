"""What the cluster has: its nodes, as :func:`llmos.cluster.runtime.nodes` reports them (no Ray here)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class NodeInfo:
    node_id: str
    address: str
    alive: bool
    is_head: bool
    total: dict[str, float]
    """Resources by name (``CPU``, ``GPU``, ``memory`` in bytes, ...)."""
    available: dict[str, float]
    """What is free now (empty for a dead node)."""
