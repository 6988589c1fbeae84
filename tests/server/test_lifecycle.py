from __future__ import annotations

import asyncio
import json
import time

import pytest

from llmos.kernel import Kernel
from llmos.server import Lifecycle
from polling import until

from .conftest import ServeFactory

pytestmark = pytest.mark.anyio

MSG = [{"role": "user", "content": "hi"}]


async def test_ready_is_503_until_startup_work_finishes(serve: ServeFactory) -> None:
    gate = asyncio.Event()

    async def startup(kernel: Kernel, life: Lifecycle) -> None:
        life.mark_starting("pulling the default model")
        await gate.wait()

    s = await serve(startup=startup)
    r = await s.client.get("/ready")
    assert r.status_code == 503 and r.json() == {"status": "starting", "detail": "pulling the default model"}
    assert (await s.client.get("/health")).status_code == 200, "liveness does not wait for startup"
    gate.set()

    async def ready() -> bool:
        return (await s.client.get("/ready")).status_code == 200

    await until(ready, what="/ready to say 200", every_s=0.01)
    assert (await s.client.get("/ready")).json()["status"] == "ready"


async def test_shutdown_drains_short_requests_and_aborts_long_ones(serve: ServeFactory) -> None:
    s = await serve(step_cost_s=0.01, drain_timeout=0.6)
    short = {"model": "fake:1", "messages": MSG, "max_tokens": 20, "temperature": 0}
    long = {"model": "fake:1", "messages": MSG, "max_tokens": 5000, "stream": True}
    a = asyncio.create_task(s.client.post("/v1/chat/completions", json=short))
    b = asyncio.create_task(s.client.post("/v1/chat/completions", json=long))
    for _ in range(1000):
        loaded = s.kernel.loaded("fake:1")
        if loaded is not None and loaded.core.running == 2:
            break
        await asyncio.sleep(0.005)
    started = time.monotonic()
    stop = asyncio.create_task(s.stop())
    await asyncio.sleep(0.05)
    assert (await s.client.get("/ready")).status_code == 503
    late = await s.client.post("/v1/chat/completions", json=short)
    assert late.status_code == 503, "no new work once draining"
    ra, rb = await a, await b
    await stop
    assert time.monotonic() - started < 5
    assert ra.status_code == 200 and ra.json()["usage"]["completion_tokens"] == 20, "in-flight work finished"
    events = [json.loads(p[6:]) for p in rb.text.split("\n\n") if p.startswith("data: {")]
    assert "error" in events[-1], "the request still running after the drain timeout is aborted"
    assert s.kernel.ps() == []
