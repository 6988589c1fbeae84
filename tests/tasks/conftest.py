from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from kernel.fakes import fake_kernel  # tests/ is on sys.path (rootdir-based imports)
from llmos.server import create_app


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
async def app(tmp_path: Path) -> AsyncIterator[FastAPI]:
    """The server over a fake-engine kernel (model ``fake:1``), its lifespan running."""
    application = create_app(fake_kernel(tmp_path, models=["fake:1"]), drain_timeout=1.0)
    async with application.router.lifespan_context(application):
        yield application


@pytest.fixture
async def http(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test", timeout=30) as client:
        yield client
