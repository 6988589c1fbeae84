"""A real uvicorn server in a background thread, for tests that talk HTTP to a live llmos."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

from llmos.server.runner import server_for


@contextlib.contextmanager
def served(app: Any, life: Any, *, start_timeout: float = 10.0, log_level: str = "info") -> Iterator[str]:
    """Serve ``app`` (``create_app(kernel, lifecycle=life)``) on a free loopback port; yields its
    base URL and stops the server on exit."""
    server = server_for(app, life, host="127.0.0.1", port=0, drain_timeout=1, log_level=log_level)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    thread = threading.Thread(target=lambda: asyncio.run(server.serve(sockets=[sock])), daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + start_timeout
        while not server.started:
            if time.monotonic() > deadline or not thread.is_alive():
                raise RuntimeError("server did not start")
            time.sleep(0.01)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(start_timeout)
        sock.close()
