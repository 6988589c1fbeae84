"""Through HTTP, with the model's engine core in a process of its own (the fake backend): a SIGKILL of
the core fails its requests at once with a clear error, the server lives on, the crash shows in
``/api/ps``, the resource events and the metrics, and the next request starts a fresh core."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from kernel.fakes import MemoryRegistry, inventory, manifest
from llmos.config import load_config
from llmos.kernel import Kernel, build_kernel
from llmos.kernel.factory import process_hosts
from llmos.server import create_app

pytestmark = pytest.mark.anyio

BODY = {"model": "fake:1", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 500}


@pytest.fixture
async def served(tmp_path: Path) -> AsyncIterator[tuple[httpx.AsyncClient, Kernel]]:
    config = load_config(home=tmp_path / "home", n_slots=4, n_ctx=4 * 512, engine_backend="fake")
    kernel = build_kernel(
        config,
        registry=MemoryRegistry(tmp_path, [manifest("fake:1")]),
        host_factory=process_hosts,
        inventory=inventory(),
        load_extra={"step_cost_s": 0.05},
    )
    app = create_app(kernel, drain_timeout=1.0)
    lifespan = app.router.lifespan_context(app)
    await lifespan.__aenter__()
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://t", timeout=60
    ) as c:
        yield c, kernel
    await lifespan.__aexit__(None, None, None)


async def _ps(client: httpx.AsyncClient) -> list[dict[str, object]]:
    models: list[dict[str, object]] = (await client.get("/api/ps")).json()["models"]
    return models


async def test_sigkill_of_a_core_fails_its_requests_fast_and_the_model_comes_back(
    served: tuple[httpx.AsyncClient, Kernel],
) -> None:
    client, kernel = served
    assert (await client.post("/api/load", json={"model": "fake:1"})).status_code == 200
    [resident] = await _ps(client)
    pid = int(str(resident["pid"]))
    assert pid > 0 and pid != os.getpid()
    loaded = kernel.loaded("fake:1")
    assert loaded is not None

    async def ask() -> tuple[httpx.Response, float]:
        r = await client.post("/v1/chat/completions", json=BODY)
        return r, time.monotonic()

    running = [asyncio.create_task(ask()) for _ in range(2)]
    deadline = time.monotonic() + 30
    while loaded.core.running < 2:  # both hold a slot in the core, 25 s of work each
        assert time.monotonic() < deadline, "the requests never started"
        await asyncio.sleep(0.01)
    killed_at = time.monotonic()
    os.kill(pid, signal.SIGKILL)
    for r, ended in await asyncio.wait_for(asyncio.gather(*running), 10):
        assert ended - killed_at < 1.0
        assert r.status_code == 503 and r.json()["error"]["code"] == "engine_dead"
        assert "SIGKILL" in r.json()["error"]["message"]

    again = await client.post("/v1/chat/completions", json={**BODY, "max_tokens": 3})
    assert again.status_code == 200, again.text  # the server lived on; a fresh core took the model
    [fresh] = await _ps(client)
    assert fresh["state"] == "ready" and int(str(fresh["pid"])) not in (0, pid)
    assert fresh["restarts"] == 1 and "SIGKILL" in str(fresh["last_death"])
    kinds = [e["kind"] for e in (await client.get("/api/resources/events")).json()["events"]]
    assert kinds == ["load", "unload", "load"]
    metrics = (await client.get("/metrics")).text
    assert 'llmos_worker_restarts_total{model="fake:1"} 1.0' in metrics
