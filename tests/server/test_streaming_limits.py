"""Disconnects abort generation within an engine step; concurrent streams are batched."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from polling import until

from .conftest import ServeFactory

pytestmark = pytest.mark.anyio

MSG = [{"role": "user", "content": "tell me everything"}]


@pytest.mark.parametrize("stream", [True, False])
async def test_client_disconnect_aborts_generation_within_one_step(serve: ServeFactory, stream: bool) -> None:
    s = await serve(step_cost_s=0.02)
    await s.client.post("/api/load", json={"model": "fake:1"})
    loaded = s.kernel.loaded("fake:1")
    assert loaded is not None
    engine = s.engines[0]
    body = json.dumps({"model": "fake:1", "messages": MSG, "max_tokens": 5000, "stream": stream}).encode()
    gone = asyncio.Event()
    sent: list[dict[str, Any]] = []
    request_read = False

    async def receive() -> dict[str, Any]:
        nonlocal request_read
        if not request_read:
            request_read = True
            return {"type": "http.request", "body": body, "more_body": False}
        await gone.wait()
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.4"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/v1/chat/completions",
        "raw_path": b"/v1/chat/completions",
        "query_string": b"",
        "root_path": "",
        "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
        "client": ("127.0.0.1", 1234),
        "server": ("test", 80),
        "state": {},
    }
    task = asyncio.create_task(s.app(scope, receive, send))
    running = lambda: loaded.core.running  # noqa: E731
    await until(lambda: running() == 1 and len(engine.plans) > 5, what="the request running a few steps")
    if stream:
        await until(
            lambda: sum(1 for m in sent if m["type"] == "http.response.body") > 3, what="body chunks sent"
        )
    steps_at_disconnect = len(engine.plans)
    gone.set()
    await until(lambda: running() == 0, within_s=5, what="the generation aborted")
    assert len(engine.plans) - steps_at_disconnect <= 2, "the slot is freed within one engine step"
    assert await loaded.core.sequences() == []
    await asyncio.wait_for(task, 5)
    assert (await loaded.core.stats()).cancelled >= 1


async def test_sixteen_concurrent_streaming_chats_are_batched(serve: ServeFactory) -> None:
    s = await serve(step_cost_s=0.005)

    async def one(i: int) -> str:
        body = {
            "model": "fake:1",
            "messages": [{"role": "user", "content": f"request {i}"}],
            "max_tokens": 40,
            "stream": True,
        }
        text = ""
        async with s.client.stream("POST", "/v1/chat/completions", json=body) as r:
            assert r.status_code == 200
            async for line in r.aiter_lines():
                if line.startswith("data: {"):
                    chunk = json.loads(line[6:])
                    text += chunk["choices"][0]["delta"].get("content") or ""
                    if chunk["choices"][0]["finish_reason"]:
                        assert chunk["choices"][0]["finish_reason"] == "length"
        return text

    texts = await asyncio.gather(*(one(i) for i in range(16)))
    assert all(len(t) == 40 for t in texts), "every stream completes, none interrupted"
    widest = max(len(p) for p in s.engines[0].plans)
    assert widest >= 12, f"sequences share engine steps (widest step had {widest})"
