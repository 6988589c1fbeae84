"""``GET /health`` (the process lives) and ``GET /ready`` (it serves: 503 while starting or draining)."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from llmos.server.routes.deps import StateDep
from llmos.version import __version__

router = APIRouter(tags=["health"])


@router.get("/health")
async def health() -> dict[str, str]:
    return {"status": "ok", "version": __version__}


@router.get("/ready")
async def ready(state: StateDep) -> JSONResponse:
    life = state.lifecycle
    return JSONResponse({"status": life.phase, "detail": life.detail}, status_code=200 if life.ready else 503)
