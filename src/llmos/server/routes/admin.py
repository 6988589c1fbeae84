"""The admin API under ``/api``: the same operations as the CLI.

Reading (list, show, ps) needs ``models:read``; changing (pull, import, copy, delete, load,
unload) ``models:write``. Importing a file from the server's disk is for admins, or for other
keys from ``LLMOS_IMPORT_DIR`` only (see :func:`importable`). A key's model patterns apply too: a model it may not use is left out
of lists and is a 404 by name; creating a name it may not use (pull, import, copy) is a 403.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncGenerator, AsyncIterator
from pathlib import Path

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse

from llmos.config import Config
from llmos.domain.manifest import Manifest
from llmos.errors import Forbidden, LLMOSError
from llmos.kernel.types import PullEvent, ResidentModel
from llmos.security.principal import Principal
from llmos.server import audit
from llmos.server.auth import PrincipalDep, require_visible_model
from llmos.server.errors import domain_error_body
from llmos.server.routes.deps import KernelDep
from llmos.server.schemas.admin import (
    CopyRequest,
    DeleteResponse,
    ImportRequest,
    Lineage,
    LoadRequest,
    ModelDetail,
    ModelInfo,
    ModelListResponse,
    ProgressEvent,
    PsResponse,
    PullRequest,
    RunningModel,
    UnloadRequest,
    UnloadResponse,
)
from llmos.server.sse import ndjson_line, sse_event
from llmos.server.streaming import CleanupStreamingResponse

router = APIRouter(prefix="/api", tags=["admin"])


def model_info(m: Manifest) -> ModelInfo:
    return ModelInfo(
        name=m.name,
        digest=m.digest,
        size=m.size,
        format=m.format,
        architecture=m.architecture,
        parameter_count=m.parameter_count,
        quantization=m.quantization,
        context_length=m.context_length,
        license=m.license,
        source=m.source,
        parent=m.parent,
        created_at=m.created_at,
        parameters=dict(m.parameters),
    )


def running_model(r: ResidentModel) -> RunningModel:
    return RunningModel(
        name=r.name,
        digest=r.digest,
        state=r.state,
        size=r.size_bytes,
        estimated_bytes=r.estimated_bytes,
        measured_bytes=r.measured_bytes,
        in_flight=r.in_flight,
        running=r.running,
        queued=r.queued,
        pinned=r.pinned,
        keep_alive=None if math.isinf(r.keep_alive) else r.keep_alive,
        expires_at=r.expires_at,
        weights=r.weights,
        pid=r.pid,
        restarts=r.restarts,
        last_death=r.last_death,
    )


def _event(e: PullEvent) -> ProgressEvent:
    return ProgressEvent(status=e.status, completed=e.completed, total=e.total, digest=e.digest, done=e.done)


async def _progress_response(
    request: Request, events: AsyncGenerator[PullEvent, None], stream: bool
) -> Response:
    """Stream progress as NDJSON (or SSE when the client accepts ``text/event-stream``).

    The first event is awaited before answering, so an immediate failure (unknown model, bad
    name) gets its proper status instead of a 200 stream that carries an error.
    """
    first = await anext(events)
    if not stream:
        last = first
        async for e in events:
            last = e
        return JSONResponse(_event(last).model_dump(mode="json"))
    sse = "text/event-stream" in request.headers.get("accept", "")
    frame = sse_event if sse else ndjson_line

    async def body() -> AsyncIterator[bytes]:
        yield frame(_event(first))
        try:
            async for e in events:
                yield frame(_event(e))
        except LLMOSError as exc:
            yield frame(domain_error_body(exc))

    async def close() -> None:
        await events.aclose()

    media = "text/event-stream" if sse else "application/x-ndjson"
    return CleanupStreamingResponse(body(), on_close=close, media_type=media)


@router.post("/pull")
async def pull(body: PullRequest, request: Request, kernel: KernelDep, principal: PrincipalDep) -> Response:
    principal.require("models:write")
    principal.require_model(body.model)
    events = audit.when_done(kernel.pull(body.model), kernel, principal, "model.pull", body.model)
    return await _progress_response(request, events, body.stream)


def importable(config: Config, principal: Principal, path: str) -> Path:
    """The file an import may read. Admins (who own the server) name any path; other keys only
    files inside ``LLMOS_IMPORT_DIR`` (after resolving links and ``..``), so a tenant key cannot
    probe the server's filesystem: any other path is the same 403, whether it exists or not."""
    if principal.is_admin:
        return Path(path)
    root = config.import_dir
    if root is None:
        raise Forbidden(
            "importing a file from the server's disk needs an admin key; an operator can set "
            "LLMOS_IMPORT_DIR to let models:write keys import the files in that folder",
            param="path",
        )
    candidate = Path(path) if Path(path).is_absolute() else root / path
    resolved = candidate.resolve(strict=False)
    if not resolved.is_relative_to(root.resolve(strict=False)):
        raise Forbidden(f"a key without admin may only import files inside {root}", param="path")
    return resolved


@router.post("/import")
async def import_model(
    body: ImportRequest, request: Request, kernel: KernelDep, principal: PrincipalDep
) -> Response:
    principal.require("models:write")
    principal.require_model(body.model)
    path = await asyncio.to_thread(importable, kernel.config, principal, body.path)
    events = kernel.import_file(path, body.model)
    audited = audit.when_done(events, kernel, principal, "model.import", body.model)
    return await _progress_response(request, audited, body.stream)


@router.get("/models", response_model=ModelListResponse)
async def list_models(kernel: KernelDep, principal: PrincipalDep) -> ModelListResponse:
    principal.require("models:read")
    return ModelListResponse(
        models=[model_info(m) for m in await kernel.list_models() if principal.allows_model(m.name)]
    )


@router.post("/models/copy", response_model=ModelInfo)
async def copy_model(body: CopyRequest, kernel: KernelDep, principal: PrincipalDep) -> ModelInfo:
    principal.require("models:write")
    require_visible_model(principal, body.source)
    principal.require_model(body.destination)
    copied = await kernel.copy_model(body.source, body.destination)
    await audit.record(kernel, principal, "model.copy", body.destination, {"source": body.source})
    return model_info(copied)


@router.get("/models/{model:path}", response_model=ModelDetail)
async def show_model(model: str, kernel: KernelDep, principal: PrincipalDep) -> ModelDetail:
    principal.require("models:read")
    require_visible_model(principal, model)
    details = await kernel.show_model(model)
    info = model_info(details.manifest)
    return ModelDetail(
        **info.model_dump(),
        chat_template=details.manifest.chat_template,
        chat_template_source=details.manifest.metadata.get("chat_template_source"),
        chat_template_guess=details.manifest.metadata.get("chat_template_guess"),
        versions=[model_info(v) for v in details.versions],
        adapter_of=details.manifest.metadata.get("adapter_of"),
        lineage=_lineage(details.manifest.metadata.get("lineage")),
    )


def _lineage(raw: object) -> Lineage | None:
    return Lineage.model_validate(raw) if isinstance(raw, dict) else None


@router.delete("/models/{model:path}", response_model=DeleteResponse)
async def delete_model(model: str, kernel: KernelDep, principal: PrincipalDep) -> DeleteResponse:
    principal.require("models:write")
    require_visible_model(principal, model)
    await kernel.delete_model(model)
    await audit.record(kernel, principal, "model.delete", model)
    return DeleteResponse(model=model)


@router.post("/load", response_model=RunningModel)
async def load(body: LoadRequest, kernel: KernelDep, principal: PrincipalDep) -> RunningModel:
    principal.require("models:write")
    require_visible_model(principal, body.model)
    return running_model(await kernel.load(body.model, keep_alive=body.keep_alive, pin=body.pin))


@router.post("/unload", response_model=UnloadResponse)
async def unload(body: UnloadRequest, kernel: KernelDep, principal: PrincipalDep) -> UnloadResponse:
    principal.require("models:write")
    require_visible_model(principal, body.model)
    return UnloadResponse(model=body.model, unloaded=await kernel.unload(body.model))


@router.get("/ps", response_model=PsResponse)
async def ps(kernel: KernelDep, principal: PrincipalDep) -> PsResponse:
    principal.require("models:read")
    return PsResponse(models=[running_model(r) for r in kernel.ps() if principal.allows_model(r.name)])
