"""The access log and HTTP metrics, as a pure ASGI middleware (streams pass through untouched).

For every HTTP request it binds the request id (set by the server's request-context middleware
in ``scope["state"]``) to the logging context, so every line logged while the request runs
carries it; when the response (or its stream) ends it writes one ``llmos.access`` line —
method, path, status, latency, request id, tenant, model — and counts the request in
``llmos_http_requests_total``. Never logged: headers (the Authorization key), query strings,
bodies (prompts).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from llmos.observability.logging import bind_request, current_request, reset_request
from llmos.observability.metrics import Metrics

access_log = logging.getLogger("llmos.access")

QUIET_PATHS = frozenset({"/health", "/ready", "/metrics"})
"""Probes and scrapes: logged at DEBUG so they do not drown the requests that matter."""


class AccessLog:
    """``route_of(scope)`` names the matched route template (``/v1/models/{model}``): metric labels
    must not carry raw paths, whose number is unbounded."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        metrics: Metrics,
        route_of: Callable[[Scope], str],
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        self.app = app
        self.metrics = metrics
        self.route_of = route_of
        self.clock = clock

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        state = scope.setdefault("state", {})
        token = bind_request(str(state.get("request_id") or "-"))
        started = self.clock()
        status = 500

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            try:
                self._done(scope, status, self.clock() - started)
            finally:
                reset_request(token)

    def _done(self, scope: Scope, status: int, seconds: float) -> None:
        method = str(scope.get("method", "GET"))
        path = str(scope.get("path", ""))
        req = current_request()
        tenant = req.tenant if req else None
        if tenant is None:
            principal = scope.get("state", {}).get("principal")
            tenant = getattr(principal, "tenant", None)
        try:
            route = self.route_of(scope)
        except Exception:  # a label is never worth failing a request over
            route = "unmatched"
        self.metrics.http_request(method, route, status, seconds)
        level = logging.DEBUG if path in QUIET_PATHS else logging.INFO
        if not access_log.isEnabledFor(level):
            return
        client = scope.get("client")
        access_log.log(
            level,
            "%s %s %d %.1fms tenant=%s",
            method,
            path,
            status,
            seconds * 1000,
            tenant or "-",
            extra={
                "http_method": method,
                "path": path,
                "route": route,
                "status": status,
                "latency_ms": round(seconds * 1000, 3),
                "client": f"{client[0]}:{client[1]}" if client else None,
                "tenant": tenant,
            },
        )
