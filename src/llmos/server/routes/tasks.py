"""``/api/tasks``: the task pipelines (summarize, translate, classify, sentiment, extract_entities)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from llmos.kernel.types import DEFAULT_URGENCY, RequestMeta
from llmos.server.auth import PrincipalDep
from llmos.server.meta import capped, request_id
from llmos.server.metering import admit, meter, metered
from llmos.server.routes.deps import KernelDep
from llmos.server.schemas.common import ErrorResponse, Usage
from llmos.server.schemas.tasks import TaskInfo, TaskInput, TaskListResponse, TaskRequestBody, TaskResponse
from llmos.tasks import TASKS, TaskRequest

router = APIRouter(prefix="/api/tasks", tags=["tasks"])


@router.get("", response_model=TaskListResponse)
async def list_tasks(principal: PrincipalDep) -> TaskListResponse:
    principal.require("inference")
    return TaskListResponse(
        data=[TaskInfo(name=t.name, description=t.description, params=list(t.params)) for t in TASKS.values()]
    )


@router.post(
    "/{task}",
    response_model=TaskResponse,
    responses={400: {"model": ErrorResponse}, 403: {"model": ErrorResponse}, 404: {"model": ErrorResponse}},
    dependencies=[metered("task")],
)
async def run_task(
    task: str, body: TaskRequestBody, request: Request, kernel: KernelDep, principal: PrincipalDep
) -> JSONResponse:
    meter(request).operation = "task:" + task[:30]
    model = body.model or kernel.config.default_model
    grant = await admit(request, principal, scope="inference", model=model, max_tokens=body.max_tokens)
    meta, lowered = capped(
        RequestMeta(
            request_id=request_id(request),
            tenant=principal.tenant,
            urgency=DEFAULT_URGENCY if body.priority is None else body.priority,
            keep_alive=body.keep_alive,
        ),
        grant.urgency_ceiling,
    )
    result = await kernel.run_task(
        task,
        TaskRequest(
            model=model,
            text=body.text,
            params=body.params,
            input_format=body.input_format,
            max_input_chars=body.max_input_chars,
            max_tokens=body.max_tokens if body.max_tokens is not None else grant.max_tokens,
            temperature=body.temperature,
            seed=body.seed,
        ),
        meta,
    )
    meter(request).report(
        model=model,
        digest=result.digest,
        prompt_tokens=result.prompt_tokens,
        completion_tokens=result.completion_tokens,
    )
    response = TaskResponse(
        id=f"task-{meta.request_id}",
        task=result.task,
        model=result.model,
        output=result.output,
        output_schema=result.schema,
        input=TaskInput(
            original_chars=result.input.original_chars,
            chars=result.input.chars,
            html_stripped=result.input.html_stripped,
            truncated=result.input.truncated,
            truncated_for=result.input.truncated_for,  # type: ignore[arg-type]
        ),
        finish_reason=result.finish_reason,
        usage=Usage(
            prompt_tokens=result.prompt_tokens,
            completion_tokens=result.completion_tokens,
            total_tokens=result.prompt_tokens + result.completion_tokens,
        ),
    )
    return JSONResponse(response.model_dump(mode="json", by_alias=True), headers=lowered)
