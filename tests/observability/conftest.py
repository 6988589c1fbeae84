from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from kernel.fakes import fake_kernel  # tests/ is on sys.path (rootdir-based imports)
from llmos.kernel import Kernel
from llmos.server import create_app


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class App:
    def __init__(self, app: FastAPI, kernel: Kernel, client: httpx.AsyncClient) -> None:
        self.app = app
        self.kernel = kernel
        self.client = client


AppFactory = Callable[..., Awaitable[App]]


@pytest.fixture
async def serve(tmp_path: Path) -> AsyncIterator[AppFactory]:
    """``await serve(**fake_kernel_kwargs)``: an app over fake engines, lifespan running."""
    stack: list[tuple[Any, httpx.AsyncClient]] = []

    async def make(**kwargs: Any) -> App:
        kernel = fake_kernel(tmp_path / f"k{len(stack)}", **kwargs)
        app = create_app(kernel, drain_timeout=1.0)
        lifespan = app.router.lifespan_context(app)
        await lifespan.__aenter__()
        client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test", timeout=30)
        stack.append((lifespan, client))
        return App(app, kernel, client)

    yield make
    for lifespan, client in reversed(stack):
        await client.aclose()
        await lifespan.__aexit__(None, None, None)


@pytest.fixture
def restore_logging() -> Iterator[None]:
    """configure_logging changes the root logger and uvicorn's; put them back afterwards."""
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    loggers = {n: logging.getLogger(n) for n in ("uvicorn", "uvicorn.error", "uvicorn.access", "alembic")}
    saved_l = {n: (list(lg.handlers), lg.level, lg.propagate, lg.disabled) for n, lg in loggers.items()}
    yield
    root.handlers[:] = saved[0]
    root.setLevel(saved[1])
    for n, lg in loggers.items():
        handlers, level, propagate, disabled = saved_l[n]
        lg.handlers[:] = handlers
        lg.setLevel(level)
        lg.propagate = propagate
        lg.disabled = disabled
