"""A drain (SIGTERM) keeps answering while it lasts: ``/ready`` is 503, new requests get 503 with
``Retry-After``, and the streams still running at the drain timeout end with an error event and
``[DONE]``, booked with the error's status (not the 200 their headers carried)."""

from __future__ import annotations

import asyncio
import json
import signal
import socket
import threading
from pathlib import Path

import httpx
import pytest

from kernel.fakes import fake_kernel
from llmos.server import Lifecycle, create_app
from llmos.server.lifecycle import drain
from llmos.server.runner import server_for
from polling import until, wait_until

from .conftest import ServeFactory

pytestmark = pytest.mark.anyio

LONG = {
    "model": "fake:1",
    "messages": [{"role": "user", "content": "go on"}],
    "max_tokens": 2000,
    "stream": True,
}


def _events(text: str) -> list[str]:
    return [e.removeprefix("data: ") for e in text.split("\n\n") if e.startswith("data: ")]


async def test_a_drain_cuts_running_streams_with_an_error_and_done(serve: ServeFactory) -> None:
    s = await serve(step_cost_s=0.01)
    life: Lifecycle = s.app.state.llmos.lifecycle
    stream = asyncio.create_task(s.client.post("/v1/chat/completions", json=LONG))
    await until(lambda: life.in_flight and s.engines and s.engines[0].plans, what="the stream generating")
    draining = asyncio.create_task(drain(life, 0.05))
    await asyncio.sleep(0)
    assert life.draining
    ready = await s.client.get("/ready")
    assert ready.status_code == 503 and ready.json()["status"] == "draining"
    refused = await s.client.post("/v1/chat/completions", json={**LONG, "stream": False, "max_tokens": 2})
    assert refused.status_code == 503 and refused.headers["retry-after"] == "5"
    assert await draining is False  # the stream had to be cut
    r = await stream
    events = _events(r.text)
    assert r.status_code == 200 and events[-1] == "[DONE]"
    error = json.loads(events[-2])["error"]
    assert error["type"] == "overloaded_error" and "shutting down" in error["message"]
    statuses = sorted(u.status for _, u in s.kernel.security.store.list_usage())
    assert statuses == [503, 503]  # the cut stream and the refused request


def test_ready_answers_503_during_a_real_drain(tmp_path: Path) -> None:
    life = Lifecycle()
    app = create_app(fake_kernel(tmp_path, step_cost_s=0.01), lifecycle=life, drain_timeout=0.3)
    server = server_for(app, life, host="127.0.0.1", port=0, drain_timeout=0.3, log_level="warning")
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    thread = threading.Thread(target=lambda: asyncio.run(server.serve(sockets=[sock])), daemon=True)
    thread.start()
    got: list[str] = []
    streaming = threading.Event()

    def read_stream() -> None:
        with httpx.Client(timeout=30) as c, c.stream("POST", f"{url}/v1/chat/completions", json=LONG) as r:
            for line in r.iter_lines():
                streaming.set()
                got.append(line)

    try:
        wait_until(lambda: server.started, what="uvicorn started", every_s=0.01)
        reader = threading.Thread(target=read_stream)
        reader.start()
        assert streaming.wait(10)
        server.handle_exit(signal.SIGTERM, None)  # what uvicorn's signal handler calls
        with httpx.Client(timeout=5) as c:
            ready = c.get(f"{url}/ready")  # the server still listens
        assert ready.status_code == 503 and ready.json()["status"] == "draining"
        reader.join(30)
        events = [line.removeprefix("data: ") for line in got if line.startswith("data: ")]
        assert events[-1] == "[DONE]" and "shutting down" in events[-2]
        thread.join(30)
        assert not thread.is_alive()  # and then it stopped
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()
