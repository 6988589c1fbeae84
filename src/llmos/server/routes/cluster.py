"""Cluster mode's admin API: ``GET /api/cluster`` (nodes, their resources, each model's replicas,
queues and health) and ``POST /api/scale`` (start or stop replicas). Reading needs
``models:read``, scaling ``models:write``; a key's model patterns apply as everywhere."""

from __future__ import annotations

import dataclasses

from fastapi import APIRouter

from llmos.server import audit
from llmos.server.auth import PrincipalDep, require_visible_model
from llmos.server.routes.deps import KernelDep
from llmos.server.schemas.cluster import (
    ClusterResponse,
    ModelReplicasInfo,
    NodeInfo,
    ReplicaInfo,
    ScaleRequest,
    ScaleResponse,
)

router = APIRouter(prefix="/api", tags=["cluster"])


@router.get("/cluster", response_model=ClusterResponse)
async def cluster(kernel: KernelDep, principal: PrincipalDep) -> ClusterResponse:
    principal.require("models:read")
    if kernel.cluster is None:
        return ClusterResponse(enabled=False)
    status = await kernel.cluster.status()
    return ClusterResponse(
        enabled=True,
        address=status.address,
        nodes=[NodeInfo(**dataclasses.asdict(n)) for n in status.nodes],
        models=[
            ModelReplicasInfo(
                model=m.model,
                min_replicas=m.min_replicas,
                max_replicas=m.max_replicas,
                autoscaling=m.autoscaling,
                running=m.running,
                queued=m.queued,
                replicas=[ReplicaInfo(**dataclasses.asdict(r)) for r in m.replicas],
                router_entries=m.router_entries,
                routed=m.routed,
            )
            for m in status.models
            if principal.allows_model(m.model)
        ],
    )


@router.post("/scale", response_model=ScaleResponse)
async def scale(body: ScaleRequest, kernel: KernelDep, principal: PrincipalDep) -> ScaleResponse:
    principal.require("models:write")
    require_visible_model(principal, body.model)
    serving = await kernel.scale(body.model, body.replicas)
    await audit.record(kernel, principal, "model.scale", body.model, {"replicas": body.replicas})
    return ScaleResponse(model=body.model, replicas=serving)
