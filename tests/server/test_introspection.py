from __future__ import annotations

import asyncio

import pytest

from llmos.config import load_config

from .conftest import ServeFactory

pytestmark = pytest.mark.anyio

MSG = [{"role": "user", "content": "hi"}]


async def test_scheduler_stats_and_queued_requests(serve: ServeFactory, tmp_path) -> None:  # type: ignore[no-untyped-def]
    s = await serve(config=load_config(home=tmp_path / "h", n_slots=1, n_ctx=2048), step_cost_s=0.01)
    assert (await s.client.get("/api/scheduler")).json() == {"models": []}
    body = {"model": "fake:1", "messages": MSG, "max_tokens": 100}
    running = asyncio.create_task(
        s.client.post("/v1/chat/completions", json=body, headers={"x-llmos-tenant": "a"})
    )
    for _ in range(1000):
        loaded = s.kernel.loaded("fake:1")
        if loaded is not None and loaded.core.running == 1:
            break
        await asyncio.sleep(0.005)
    waiting = asyncio.create_task(
        s.client.post("/v1/chat/completions", json=body, headers={"x-llmos-tenant": "b"})
    )
    for _ in range(1000):
        reqs = (await s.client.get("/api/scheduler/requests")).json()["models"][0]["requests"]
        if len(reqs) == 2:
            break
        await asyncio.sleep(0.005)
    by_tenant = {r["tenant"]: r for r in reqs}
    assert by_tenant["a"]["phase"] == "running" and by_tenant["b"]["position"] == 0
    stats = (await s.client.get("/api/scheduler")).json()["models"][0]
    assert stats["model"] == "fake:1" and stats["slots"] == 1 and stats["queued"] == 1
    assert {"predicted_wait_s", "predicted_wait_mmc_s", "observed_wait_mean_s"} <= set(stats["queue_model"])
    assert (await running).status_code == 200 and (await waiting).status_code == 200


async def test_resources_events_and_pinning(serve: ServeFactory) -> None:
    s = await serve()
    await s.client.post("/api/load", json={"model": "fake:1"})
    res = (await s.client.get("/api/resources")).json()
    assert res["inventory"]["physical_cores"] == 2 and res["budget"]["ram_bytes"] > 0
    assert [r["model"] for r in res["residents"]] == ["fake:1"] and res["used_bytes"] > 0
    pinned = (await s.client.post("/api/pin", json={"model": "fake:1"})).json()
    assert pinned["pinned"] is True
    assert (await s.client.post("/api/unpin", json={"model": "fake:1"})).json()["pinned"] is False
    assert (await s.client.post("/api/pin", json={"model": "ghost:1"})).status_code == 404
    await s.client.post("/api/unload", json={"model": "fake:1"})
    kinds = [e["kind"] for e in (await s.client.get("/api/resources/events")).json()["events"]]
    assert kinds == ["load", "unload"]
