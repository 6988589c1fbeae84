from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from kernel.fakes import fake_kernel  # tests/ is on sys.path (rootdir-based imports)
from llmos.server import Lifecycle, create_app
from llmos.server.runner import server_for


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def live_url(tmp_path: Path) -> Iterator[str]:
    """A real uvicorn server on a free loopback port, over a fake-engine kernel."""
    kernel = fake_kernel(tmp_path, models=["fake:1"], catalog=["cat:1"], step_cost_s=0.002)
    life = Lifecycle()
    server = server_for(create_app(kernel, lifecycle=life), life, host="127.0.0.1", port=0, drain_timeout=1)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    thread = threading.Thread(target=lambda: asyncio.run(server.serve(sockets=[sock])), daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("server did not start")
        time.sleep(0.01)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(10)
    sock.close()
