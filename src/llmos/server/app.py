"""The FastAPI app, built from a kernel by :func:`create_app`."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable

from fastapi import Depends, FastAPI
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from llmos.errors import InvalidRequest, PayloadTooLarge
from llmos.kernel.kernel import Kernel
from llmos.observability.access import AccessLog
from llmos.security.redact import install_redaction
from llmos.server.auth import require_caller
from llmos.server.bounds import bounded_receive, check_unicode
from llmos.server.errors import domain_error_response, install_error_handlers
from llmos.server.lifecycle import Lifecycle
from llmos.server.metering import MeteringMiddleware
from llmos.server.routes import (
    admin,
    cluster,
    conversations,
    data,
    docs,
    health,
    introspection,
    metrics,
    openai_chat,
    openai_completions,
    openai_embeddings,
    openai_files,
    openai_fine_tuning,
    openai_models,
    security,
    tasks,
    ui,
)
from llmos.server.state import ServerState
from llmos.version import __version__

log = logging.getLogger(__name__)

Startup = Callable[[Kernel, Lifecycle], Awaitable[None]]
"""Work to finish before the server reports ready (e.g. pulling the default model)."""

REQUEST_ID_HEADER = "x-request-id"
UNCOUNTED_PATHS = frozenset({"/health", "/ready", "/metrics"})
"""Requests a drain does not wait for (probes and scrapes)."""


class RequestContext:
    """Pure ASGI middleware (streams pass through untouched): gives every request an id (the
    client's ``X-Request-Id`` if it sent a sane one), echoes it as ``x-request-id``, refuses
    bodies over the configured size and JSON bodies that are not Unicode, and counts the
    requests in flight for a drain."""

    def __init__(self, app: ASGIApp, max_body_bytes: int, lifecycle: Lifecycle) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.lifecycle = lifecycle

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        given = headers.get(REQUEST_ID_HEADER, "")
        own = uuid.uuid4().hex
        rid = given if given and len(given) <= 96 and given.isprintable() else own
        state = scope.setdefault("state", {})
        state["request_id"] = rid
        # What the kernel knows the request by: a client's id plus a unique part, so the same
        # id sent by two tenants (or twice) never collides in a scheduler.
        state["request_key"] = rid if rid == own else f"{rid}-{own[:12]}"

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], (REQUEST_ID_HEADER.encode(), rid.encode())]
            await send(message)

        length = headers.get("content-length", "")
        if length.isdigit() and int(length) > self.max_body_bytes:
            exc = PayloadTooLarge(
                f"request body is {length} bytes; the limit is {self.max_body_bytes}", param="body"
            )
            await domain_error_response(exc)(scope, receive, send_with_id)
            return
        chunked = not length.isdigit() and "chunked" in headers.get("transfer-encoding", "").lower()
        is_json = "json" in headers.get("content-type", "").lower()
        if chunked or is_json:
            try:
                receive = await bounded_receive(
                    receive, self.max_body_bytes, check=check_unicode if is_json else None
                )
            except InvalidRequest as refused:
                await domain_error_response(refused)(scope, receive, send_with_id)
                return
        if scope.get("path") in UNCOUNTED_PATHS:
            await self.app(scope, receive, send_with_id)
            return
        self.lifecycle.enter()  # what a drain waits for
        try:
            await self.app(scope, receive, send_with_id)
        finally:
            self.lifecycle.leave()


def create_app(
    kernel: Kernel,
    *,
    startup: Startup | None = None,
    lifecycle: Lifecycle | None = None,
    drain_timeout: float = 30.0,
) -> FastAPI:
    """The HTTP server over ``kernel``.

    On startup the kernel starts and ``startup`` (if any) runs in the background; ``/ready``
    answers 503 until it finishes. On shutdown the server reports draining, running requests
    get ``drain_timeout`` seconds to finish, the rest are aborted and every model unloads.
    """
    life = lifecycle or Lifecycle()

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await kernel.start()
        task: asyncio.Task[None] | None = None
        if startup is None:
            life.mark_ready()
        else:

            async def run_startup() -> None:
                try:
                    await startup(kernel, life)
                except Exception as exc:
                    log.error("startup failed: %s", exc)
                    life.mark_starting(f"startup failed: {exc}")
                    raise
                life.mark_ready()

            task = asyncio.create_task(run_startup(), name="llmos-startup")
        try:
            yield
        finally:
            life.mark_draining()
            if task is not None and not task.done():
                task.cancel()
                with contextlib.suppress(BaseException):
                    await task
            await kernel.shutdown(drain_timeout)

    install_redaction()  # no key or Authorization header reaches a log line
    log.info("%s", kernel.security.describe())
    # Every route needs a key where auth is on, except the public ones (llmos.server.auth).
    app = FastAPI(
        title="llmos",
        version=__version__,
        lifespan=lifespan,
        dependencies=[Depends(require_caller)],
        # Served by routes.docs instead, behind the same key check as every route.
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )
    app.state.llmos = ServerState(kernel=kernel, lifecycle=life)
    install_error_handlers(app)
    for module in (
        health,
        openai_models,
        openai_chat,
        openai_completions,
        openai_embeddings,
        openai_files,
        openai_fine_tuning,
        admin,
        introspection,
        cluster,
        metrics,
        ui,
        tasks,
        conversations,
        security,
        data,
        docs,
    ):
        app.include_router(module.router)
    app.add_middleware(MeteringMiddleware, kernel=kernel)  # one usage row per metered request
    # Inside RequestContext (added last, so outermost): the request id is set when it runs.
    app.add_middleware(AccessLog, metrics=kernel.metrics, route_of=metrics.route_template(app))
    app.add_middleware(RequestContext, max_body_bytes=kernel.config.limits.max_body_bytes, lifecycle=life)
    return app
