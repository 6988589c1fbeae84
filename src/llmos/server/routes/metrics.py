"""``GET /metrics`` (Prometheus text format) and ``GET /api/metrics/summary`` (JSON for dashboards).

``/metrics`` lists tenants and their token counts, so where keys are required it needs one with
the ``metrics:read`` scope (or ``admin``; ``LLMOS_METRICS_REQUIRE_ADMIN=1``: admin only), sent by
the scraper as a bearer token. With auth off it is open, like any local scrape target. Its
labels carry model and tenant names, never prompts.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response
from starlette.applications import Starlette
from starlette.routing import Match
from starlette.types import Scope

from llmos.observability.metrics import CONTENT_TYPE
from llmos.server.auth import PrincipalDep, bearer, principal
from llmos.server.routes.deps import KernelDep

router = APIRouter(tags=["observability"])


@router.get("/metrics", response_class=Response, responses={200: {"content": {CONTENT_TYPE: {}}}})
async def metrics(request: Request, kernel: KernelDep) -> Response:
    """Every ``llmos_*`` metric (see docs/observability.md)."""
    if kernel.security.auth_required or kernel.config.metrics_require_admin:
        caller = await asyncio.to_thread(principal, request, await bearer(request))
        caller.require("admin" if kernel.config.metrics_require_admin else "metrics:read")
    await kernel.scheduler_stats()  # the queue gauges read the cores' state as of now
    return Response(kernel.metrics.render(), media_type=CONTENT_TYPE)


@router.get("/api/metrics/summary")
async def summary(
    kernel: KernelDep,
    caller: PrincipalDep,
    window: Annotated[float, Query(gt=0, le=3600, description="seconds of recent requests")] = 60.0,
) -> dict[str, Any]:
    """Totals since start, and the last ``window`` seconds' throughput and latency quantiles.
    Needs ``models:read``; the per-model rows list only the models the caller's key may use."""
    caller.require("models:read")
    await kernel.scheduler_stats()
    view = kernel.metrics.summary(window)
    if not caller.is_admin:
        models = view.get("models")
        if isinstance(models, list):
            view["models"] = [m for m in models if caller.allows_model(str(m.get("model", "")))]
    return view


def route_template(app: Starlette) -> Callable[[Scope], str]:
    """The route template a served request matched (``/v1/models/{model}``), else ``unmatched``."""

    def route_of(scope: Scope) -> str:
        route = scope.get("route")
        path = getattr(route, "path", None)
        if isinstance(path, str):
            return path
        for candidate in app.router.routes:
            match, _ = candidate.matches(scope)
            if match == Match.FULL:
                return str(getattr(candidate, "path", "unmatched"))
        return "unmatched"

    return route_of
