"""Fixtures for the embeddings tests: a fake-engine app with a generative and an embedding-only
model, and (integration) a real registry holding SmolLM2's GGUF and, with [ml], minilm:l6."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from kernel.fakes import MemoryRegistry, inventory, manifest  # tests/ is on sys.path
from llmos.config import load_config
from llmos.engine.base import Engine
from llmos.engine.fake import FakeEngine
from llmos.kernel import Kernel, build_kernel
from llmos.server import create_app

EMBEDDING_MODEL = "emb:1"
"""A sentence-transformers manifest (the fake engine stands in for its backend)."""
CHAT_MODEL = "fake:1"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class FakeApp:
    def __init__(self, app: FastAPI, kernel: Kernel, client: httpx.AsyncClient, engines: list[Any]) -> None:
        self.app = app
        self.kernel = kernel
        self.client = client
        self.engines = engines
        self.backends: list[str] = []


AppFactory = Callable[..., Awaitable[FakeApp]]


def fake_embedding_kernel(
    tmp: Path,
    *,
    engines: list[Any],
    backends: list[str],
    engine_factory: Callable[[str], Engine] | None = None,
    embedding_dim: int = 32,
) -> Kernel:
    def factory(backend: str) -> Engine:
        backends.append(backend)
        engine: Engine = engine_factory(backend) if engine_factory is not None else FakeEngine()
        engines.append(engine)
        return engine

    models = [manifest(CHAT_MODEL), replace(manifest(EMBEDDING_MODEL), format="sentence-transformers")]
    return build_kernel(
        load_config(home=tmp / "home", n_slots=4, n_ctx=4 * 512),
        registry=MemoryRegistry(tmp, models),
        engine_factory=factory,
        inventory=inventory(),
        load_extra={"embedding_dim": embedding_dim},
    )


@pytest.fixture
async def fake_app(tmp_path: Path) -> AsyncIterator[AppFactory]:
    """``await fake_app(**kwargs)`` → an app over fake engines, its lifespan running."""
    stack: list[tuple[Any, httpx.AsyncClient]] = []

    async def make(**kwargs: Any) -> FakeApp:
        engines: list[Any] = []
        backends: list[str] = []
        kernel = fake_embedding_kernel(tmp_path, engines=engines, backends=backends, **kwargs)
        app = create_app(kernel, drain_timeout=1.0)
        lifespan = app.router.lifespan_context(app)
        await lifespan.__aenter__()
        client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test", timeout=60)
        stack.append((lifespan, client))
        made = FakeApp(app, kernel, client, engines)
        made.backends = backends
        return made

    yield make
    for lifespan, client in reversed(stack):
        await client.aclose()
        await lifespan.__aexit__(None, None, None)


# --- the real thing: registry, worker engines, uvicorn ------------------------------------------


@pytest.fixture(scope="session")
def real_home(tmp_path_factory: pytest.TempPathFactory, smollm2_gguf: Path) -> Path:
    """One LLMOS_HOME for the session: SmolLM2's GGUF imported as smollm2:135m, and minilm:l6
    pulled from its package (it runs on llama.cpp: no [ml] extra needed)."""
    from llmos.registry import open_registry

    home = tmp_path_factory.mktemp("embeddings-home")
    registry = open_registry(load_config(home=home))
    registry.import_file(smollm2_gguf, "smollm2:135m")
    registry.pull("minilm:l6")
    return home


@pytest.fixture(scope="module")
def live_server(real_home: Path) -> Iterator[str]:
    """A real uvicorn server on a free loopback port over a real kernel (worker processes)."""
    from live_server import served
    from llmos.server import Lifecycle

    kernel = build_kernel(load_config(home=real_home, n_slots=4, n_ctx=4096))
    life = Lifecycle()
    with served(create_app(kernel, lifecycle=life), life, start_timeout=60, log_level="warning") as url:
        yield url
