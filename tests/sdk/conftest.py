from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from kernel.fakes import fake_kernel  # tests/ is on sys.path (rootdir-based imports)
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
