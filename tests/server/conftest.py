from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from kernel.fakes import fake_kernel  # tests/ is on sys.path (rootdir-based imports)
from llmos.engine.fake import FakeEngine
from llmos.kernel import Kernel
from llmos.server import create_app


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class Served:
    """An app over a fake kernel, its lifespan running, and an httpx client bound to it."""

    def __init__(
        self, app: FastAPI, kernel: Kernel, client: httpx.AsyncClient, engines: list[FakeEngine]
    ) -> None:
        self.app = app
        self.kernel = kernel
        self.client = client
        self.engines = engines
        self.lifespan: Any = None

    async def stop(self) -> None:
        """Run the app's shutdown now (as on SIGTERM after uvicorn stops accepting)."""
        self.lifespan._llmos_stopped = True
        await self.lifespan.__aexit__(None, None, None)


ServeFactory = Callable[..., Awaitable[Served]]


@pytest.fixture
async def serve(tmp_path: Path) -> AsyncIterator[ServeFactory]:
    """``await serve(**fake_kernel_kwargs)`` → a running app; everything stops at teardown."""
    stack: list[tuple[Any, httpx.AsyncClient]] = []

    async def make(**kwargs: Any) -> Served:
        engines: list[FakeEngine] = []
        drain_timeout = kwargs.pop("drain_timeout", 1.0)
        startup = kwargs.pop("startup", None)
        kernel = fake_kernel(tmp_path, engines=engines, **kwargs)
        app = create_app(kernel, drain_timeout=drain_timeout, startup=startup)
        lifespan = app.router.lifespan_context(app)
        await lifespan.__aenter__()
        client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test", timeout=30)
        stack.append((lifespan, client))
        served = Served(app, kernel, client, engines)
        served.lifespan = lifespan
        return served

    yield make
    for lifespan, client in reversed(stack):
        await client.aclose()
        if not getattr(lifespan, "_llmos_stopped", False):
            await lifespan.__aexit__(None, None, None)
