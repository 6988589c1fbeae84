"""What the OS is doing: ``/api/scheduler`` (queues, tenants, the queueing model),
``/api/scheduler/requests`` (each request's place and estimated start), ``/api/resources``
(inventory, budget, residents), ``/api/resources/events``, and ``/api/pin`` / ``/api/unpin``."""

from __future__ import annotations

from fastapi import APIRouter

from llmos.kernel.kernel import Kernel
from llmos.server.routes.admin import running_model
from llmos.server.routes.deps import KernelDep
from llmos.server.schemas.admin import RunningModel
from llmos.server.schemas.introspection import (
    ModelRequests,
    PinRequest,
    ResourceEventsResponse,
    ResourcesResponse,
    SchedulerRequestsResponse,
    SchedulerResponse,
)

router = APIRouter(prefix="/api", tags=["introspection"])


@router.get("/scheduler", response_model=SchedulerResponse)
async def scheduler(kernel: KernelDep) -> SchedulerResponse:
    return SchedulerResponse(models=kernel.scheduler_stats())


@router.get("/scheduler/requests", response_model=SchedulerRequestsResponse)
async def scheduler_requests(kernel: KernelDep) -> SchedulerRequestsResponse:
    return SchedulerRequestsResponse(
        models=[ModelRequests(model=s.model, requests=list(s.requests)) for s in kernel.scheduler_stats()]
    )


@router.get("/resources", response_model=ResourcesResponse)
async def resources(kernel: KernelDep) -> ResourcesResponse:
    view = kernel.resources()
    return ResourcesResponse(
        inventory=view.inventory,
        budget=view.budget,
        used_bytes=view.used_bytes,
        residents=list(view.residents),
    )


@router.get("/resources/events", response_model=ResourceEventsResponse)
async def resource_events(kernel: KernelDep) -> ResourceEventsResponse:
    return ResourceEventsResponse(events=list(kernel.resources().events))


@router.post("/pin", response_model=RunningModel)
async def pin(body: PinRequest, kernel: KernelDep) -> RunningModel:
    return await _set_pin(kernel, body.model, True)


@router.post("/unpin", response_model=RunningModel)
async def unpin(body: PinRequest, kernel: KernelDep) -> RunningModel:
    return await _set_pin(kernel, body.model, False)


async def _set_pin(kernel: Kernel, model: str, pinned: bool) -> RunningModel:
    await kernel.pin(model, pinned=pinned)
    return running_model(next(r for r in kernel.ps() if r.name == kernel.resident_key(model)))
