"""OpenAI's fine-tuning API (``/v1/fine_tuning/jobs``): create, list, retrieve, events,
checkpoints, cancel — the jobs of :mod:`llmos.training`.

Every route needs the ``fine-tune`` scope and sees only the caller's tenant's jobs (another
tenant's job is a 404). Creating a job is metered and admitted like chat: the key's model
patterns apply to the base model, and the tenant's and key's limits and budgets to an upper
bound of the tokens it will train on (dataset tokens × epochs); the trained tokens are booked
to the tenant when the job ends.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Query, Request
from starlette.responses import StreamingResponse

from llmos.domain.training import FINAL_STATES, JobSpec
from llmos.server.auth import PrincipalDep
from llmos.server.convert import sse_with_errors
from llmos.server.metering import admit, meter, metered
from llmos.server.routes.deps import KernelDep
from llmos.server.routes.openai_files import parse_file_id, tenant_of
from llmos.server.schemas.common import ErrorResponse
from llmos.server.schemas.fine_tuning import (
    CheckpointList,
    CheckpointOut,
    EventList,
    EventOut,
    JobCreate,
    JobList,
    JobOut,
)
from llmos.server.sse import sse_event
from llmos.training.manager import TrainingManager

router = APIRouter(
    prefix="/v1/fine_tuning",
    tags=["openai"],
    responses={
        400: {"model": ErrorResponse},
        403: {"model": ErrorResponse},
        404: {"model": ErrorResponse},
        409: {"model": ErrorResponse},
        501: {"model": ErrorResponse},
    },
)

Limit = Annotated[int, Query(ge=1, le=100)]
FOLLOW_POLL_S = 0.5
"""How often a followed job's new events are read."""
KEEPALIVE_S = 15.0
"""A comment line this often keeps a quiet event stream (a long epoch) open through proxies."""


@router.post("/jobs", response_model=JobOut, dependencies=[metered("fine-tune")])
async def create_job(body: JobCreate, request: Request, kernel: KernelDep, principal: PrincipalDep) -> JobOut:
    tenant = tenant_of(principal)
    hp = body.hyper()
    training = parse_file_id(body.training_file, "training_file")
    validation = parse_file_id(body.validation_file, "validation_file") if body.validation_file else None
    dataset = await kernel.data.datasets.get(tenant, training)
    await admit(
        request,
        principal,
        scope="fine-tune",
        model=body.model,
        generates=False,
        upper_bound_tokens=dataset.token_count * hp.epochs,
    )
    manager = await kernel.fine_tuning()
    job = await manager.create(
        tenant,
        JobSpec(
            model=body.model,
            training_dataset=training,
            validation_dataset=validation,
            hyperparameters=hp,
            suffix=body.suffix,
        ),
    )
    meter(request).report(model=body.model, digest=job.base_digest)
    return JobOut.of(job)


@router.get("/jobs", response_model=JobList)
async def list_jobs(
    kernel: KernelDep, principal: PrincipalDep, after: str | None = None, limit: Limit = 20
) -> JobList:
    tenant = tenant_of(principal)
    jobs = await (await kernel.fine_tuning()).list(tenant, after=after, limit=limit + 1)
    return JobList(data=[JobOut.of(j) for j in jobs[:limit]], has_more=len(jobs) > limit)


@router.get("/jobs/{job_id}", response_model=JobOut)
async def retrieve_job(job_id: str, kernel: KernelDep, principal: PrincipalDep) -> JobOut:
    tenant = tenant_of(principal)
    return JobOut.of(await (await kernel.fine_tuning()).get(tenant, job_id))


@router.post("/jobs/{job_id}/cancel", response_model=JobOut)
async def cancel_job(job_id: str, kernel: KernelDep, principal: PrincipalDep) -> JobOut:
    tenant = tenant_of(principal)
    return JobOut.of(await (await kernel.fine_tuning()).cancel(tenant, job_id))


@router.get("/jobs/{job_id}/events", response_model=EventList)
async def list_events(
    job_id: str,
    kernel: KernelDep,
    principal: PrincipalDep,
    after: str | None = None,
    limit: Limit = 20,
    stream: bool = False,
) -> EventList | StreamingResponse:
    """Newest first; ``after`` an event id pages to older ones (OpenAI's order). ``stream=true``
    (llmos): every event after ``after`` as server-sent events, oldest first, as they are
    written, then ``[DONE]`` when the job has ended."""
    tenant = tenant_of(principal)
    manager = await kernel.fine_tuning()
    anchor = _event_number(after)
    if stream:
        await manager.get(tenant, job_id)  # a 404 before the stream starts
        events = _follow(manager, tenant, job_id, anchor or 0)
        return StreamingResponse(sse_with_errors(events), media_type="text/event-stream")
    found = await manager.events(tenant, job_id, after=anchor, limit=limit + 1)
    return EventList(data=[EventOut.of(e) for e in found[:limit]], has_more=len(found) > limit)


async def _follow(manager: TrainingManager, tenant: str, job_id: str, since: int) -> AsyncIterator[bytes]:
    """The job's events after ``since`` as SSE until a read that began after the job ended
    (its last events are written just after its final state)."""
    ended = False
    quiet = 0.0
    while True:
        job = await manager.get(tenant, job_id)
        new = await manager.events_since(tenant, job_id, since)
        for event in new:
            since = event.id
            yield sse_event(EventOut.of(event))
        if ended and not new:
            return
        ended = job.state in FINAL_STATES
        quiet = 0.0 if new else quiet + FOLLOW_POLL_S
        if quiet >= KEEPALIVE_S:
            quiet = 0.0
            yield b": keep-alive\n\n"
        await asyncio.sleep(0 if ended else FOLLOW_POLL_S)


@router.get("/jobs/{job_id}/checkpoints", response_model=CheckpointList)
async def list_checkpoints(
    job_id: str, kernel: KernelDep, principal: PrincipalDep, limit: Limit = 10
) -> CheckpointList:
    tenant = tenant_of(principal)
    manager = await kernel.fine_tuning()
    job = await manager.get(tenant, job_id)
    checkpoints = await manager.checkpoints(tenant, job_id, limit=limit)
    return CheckpointList(data=[CheckpointOut.of(c, job) for c in checkpoints])


def _event_number(after: str | None) -> int | None:
    if not after:
        return None
    digits = after.removeprefix("ftevent-")
    return int(digits) if digits.isdigit() else None
