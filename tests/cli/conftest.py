from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from kernel.fakes import inventory  # tests/ is on sys.path
from llmos.config import load_config
from llmos.engine.fake import FakeEngine
from llmos.kernel import build_kernel
from llmos.server import Lifecycle, create_app


@pytest.fixture
def served(
    llmos_home: Path, monkeypatch: pytest.MonkeyPatch, serve_app: Callable[..., str]
) -> Callable[[], str]:
    """Start a server on this LLMOS_HOME's registry (after the test set its environment) and
    point the CLI at it."""

    def start() -> str:
        kernel = build_kernel(
            load_config(auth="off"), engine_factory=lambda backend: FakeEngine(), inventory=inventory()
        )
        life = Lifecycle()
        url = serve_app(create_app(kernel, lifecycle=life), life)
        monkeypatch.setenv("LLMOS_BASE_URL", url)
        return url

    return start
