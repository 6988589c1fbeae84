"""``/api/cluster`` and ``/api/scale`` shapes (cluster mode)."""

from __future__ import annotations

from pydantic import BaseModel, Field

from llmos.server.schemas.common import RequestModel


class ScaleRequest(RequestModel):
    model: str = Field(min_length=1)
    replicas: int = Field(ge=1, le=1024)


class ScaleResponse(BaseModel):
    model: str
    replicas: int
    """Replicas serving once the request was carried out."""


class NodeInfo(BaseModel):
    node_id: str
    address: str
    alive: bool
    is_head: bool
    total: dict[str, float]
    available: dict[str, float]


class ReplicaInfo(BaseModel):
    name: str
    node_id: str | None
    pid: int | None
    state: str
    """``serving``, ``draining`` or ``dead``."""
    running: int
    queued: int
    outstanding_tokens: int
    started_at: float


class ModelReplicasInfo(BaseModel):
    model: str
    min_replicas: int
    max_replicas: int
    autoscaling: bool
    running: int
    queued: int
    replicas: list[ReplicaInfo]
    router_entries: int
    routed: dict[str, int]


class ClusterResponse(BaseModel):
    enabled: bool
    address: str | None = None
    nodes: list[NodeInfo] = []
    models: list[ModelReplicasInfo] = []
