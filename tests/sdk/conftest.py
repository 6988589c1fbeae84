from __future__ import annotations

import asyncio
import inspect
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from kernel.fakes import fake_kernel  # tests/ is on sys.path (rootdir-based imports)
from llmos.sdk import AsyncClient, Client
from llmos.server import Lifecycle, create_app


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def live_url(tmp_path: Path, serve_app: Callable[..., str]) -> Iterator[str]:
    """A real uvicorn server on a free loopback port, over a fake-engine kernel."""
    kernel = fake_kernel(tmp_path, models=["fake:1"], catalog=["cat:1"], step_cost_s=0.002)
    life = Lifecycle()
    url = serve_app(create_app(kernel, lifecycle=life), life)
    yield url


class Blocking:
    """An :class:`AsyncClient` (or one of its resources or handles) driven from sync test code:
    every coroutine it returns is run to its end on one event loop, every async iterator drained
    into a list. So one test body checks both shells (see the ``make_client`` fixture)."""

    def __init__(self, target: Any, loop: asyncio.AbstractEventLoop) -> None:
        self._target = target
        self._loop = loop

    def __getattr__(self, name: str) -> Any:
        value = getattr(self._target, name)
        if callable(value):
            return lambda *a, **k: self._settle(value(*a, **k))
        return self._settle(value)

    def _settle(self, value: Any) -> Any:
        if inspect.isawaitable(value):
            value = self._loop.run_until_complete(_awaited(value))
        if isinstance(value, AsyncIterator):
            return self._loop.run_until_complete(_drained(value))
        if hasattr(value, "_r"):  # a resource or a model handle: its methods are awaited too
            return Blocking(value, self._loop)
        return value

    def close(self) -> None:
        self._loop.run_until_complete(self._target.aclose())

    def __enter__(self) -> Blocking:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


async def _awaited(value: Any) -> Any:
    return await value


async def _drained(items: AsyncIterator[Any]) -> list[Any]:
    return [item async for item in items]


MakeClient = Callable[..., Any]
"""``make_client(base_url=..., transport=..., **options)``: a ``Client``, or an ``AsyncClient``
behind :class:`Blocking`; ``transport`` is an ``httpx.MockTransport`` (both kinds take it)."""


@pytest.fixture(params=["sync", "async"])
def make_client(request: pytest.FixtureRequest) -> Iterator[MakeClient]:
    made: list[Any] = []
    loop = asyncio.new_event_loop() if request.param == "async" else None

    def make(
        base_url: str = "http://test", transport: httpx.MockTransport | None = None, **options: Any
    ) -> Any:
        if loop is None:
            client: Any = Client(base_url, transport=transport, **options)
        else:
            client = Blocking(AsyncClient(base_url, transport=transport, **options), loop)
        made.append(client)
        return client

    yield make
    for client in made:
        client.close()
    if loop is not None:
        loop.close()
