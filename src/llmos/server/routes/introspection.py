"""What the OS is doing: ``/api/scheduler`` (queues, tenants, the queueing model),
``/api/scheduler/requests`` (each request's place and estimated start), ``/api/resources``
(inventory, budget, residents), ``/api/resources/events``, and ``/api/pin`` / ``/api/unpin``.

Reading needs ``models:read``, pinning ``models:write``. An admin sees everything. Anyone else
sees only the models its key's patterns allow, only its own tenant's requests, tenant row and
fair-share counter, and otherwise only totals (running, queued, completed...): never another
tenant's name, requests or usage.
"""

from __future__ import annotations

from dataclasses import replace

from fastapi import APIRouter

from llmos.kernel.kernel import Kernel
from llmos.scheduler.stats import SchedulerStats
from llmos.security.principal import Principal
from llmos.server.auth import PrincipalDep, require_visible_model
from llmos.server.routes.admin import running_model
from llmos.server.routes.deps import KernelDep
from llmos.server.schemas.admin import RunningModel
from llmos.server.schemas.introspection import (
    ModelRequests,
    PinRequest,
    QueuedJob,
    ResourceEventsResponse,
    ResourcesResponse,
    SchedulerRequestsResponse,
    SchedulerResponse,
    TrainingView,
)

router = APIRouter(prefix="/api", tags=["introspection"])


async def visible_stats(kernel: Kernel, principal: Principal) -> list[SchedulerStats]:
    """The schedulers ``principal`` may look at, cut down to what it may see (see the module doc)."""
    stats = await kernel.scheduler_stats()
    if principal.is_admin:
        return stats
    own = principal.tenant
    return [
        replace(
            s,
            tenants=tuple(t for t in s.tenants if t.tenant == own),
            requests=tuple(r for r in s.requests if r.tenant == own),
            # The fair-share policy keys its counters by tenant; other policies' keys are not
            # known to be harmless, so only the caller's own entry is shown.
            policy_state={k: v for k, v in s.policy_state.items() if k == own},
            tenant_weights={k: v for k, v in s.tenant_weights.items() if k == own},
        )
        for s in stats
        if principal.allows_model(s.model)
    ]


@router.get("/scheduler", response_model=SchedulerResponse)
async def scheduler(kernel: KernelDep, principal: PrincipalDep) -> SchedulerResponse:
    principal.require("models:read")
    return SchedulerResponse(models=await visible_stats(kernel, principal))


@router.get("/scheduler/requests", response_model=SchedulerRequestsResponse)
async def scheduler_requests(kernel: KernelDep, principal: PrincipalDep) -> SchedulerRequestsResponse:
    principal.require("models:read")
    return SchedulerRequestsResponse(
        models=[
            ModelRequests(model=s.model, requests=list(s.requests))
            for s in await visible_stats(kernel, principal)
        ]
    )


@router.get("/resources", response_model=ResourcesResponse)
async def resources(kernel: KernelDep, principal: PrincipalDep) -> ResourcesResponse:
    principal.require("models:read")
    view = kernel.resources()
    everyone = principal.is_admin
    queued = [j for j in await kernel.training_queue() if everyone or j.tenant == principal.tenant]
    return ResourcesResponse(
        inventory=view.inventory,
        budget=view.budget,
        used_bytes=view.used_bytes,
        residents=[r for r in view.residents if principal.allows_model(r.model)],
        training=TrainingView(
            yield_policy=kernel.config.training.yield_policy,
            max_jobs=kernel.config.training.max_jobs,
            jobs=[j for j in kernel.training_jobs() if everyone or j.tenant == principal.tenant],
            queued=[
                QueuedJob(id=j.id, tenant=j.tenant, model=j.model, created_at=int(j.created_at.timestamp()))
                for j in queued
            ],
        ),
    )


@router.get("/resources/events", response_model=ResourceEventsResponse)
async def resource_events(kernel: KernelDep, principal: PrincipalDep) -> ResourceEventsResponse:
    principal.require("models:read")
    return ResourceEventsResponse(
        events=[
            e
            for e in kernel.resources().events
            if principal.allows_model(e.model)
            and (e.for_model is None or principal.allows_model(e.for_model))
        ]
    )


@router.post("/pin", response_model=RunningModel)
async def pin(body: PinRequest, kernel: KernelDep, principal: PrincipalDep) -> RunningModel:
    return await _set_pin(kernel, principal, body.model, True)


@router.post("/unpin", response_model=RunningModel)
async def unpin(body: PinRequest, kernel: KernelDep, principal: PrincipalDep) -> RunningModel:
    return await _set_pin(kernel, principal, body.model, False)


async def _set_pin(kernel: Kernel, principal: Principal, model: str, pinned: bool) -> RunningModel:
    principal.require("models:write")
    require_visible_model(principal, model)
    await kernel.pin(model, pinned=pinned)
    return running_model(next(r for r in kernel.ps() if r.name == kernel.resident_key(model)))
