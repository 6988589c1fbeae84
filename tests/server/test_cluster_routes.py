"""Cluster mode's admin API over replicas on threads (the fake engine, no Ray): /api/cluster,
/api/scale, routing events; and both answer plainly on one machine."""

from __future__ import annotations

import pytest

from llmos.config import load_config
from llmos.core import CoreSpec, ThreadHost
from llmos.engine.fake import FakeEngine

from .conftest import ServeFactory

pytestmark = pytest.mark.anyio

MSG = [{"role": "system", "content": "You are a shop assistant. " * 8}, {"role": "user", "content": "hi"}]


def thread_replicas(spec: CoreSpec, name: str, memory_bytes: int) -> ThreadHost:
    return ThreadHost(lambda backend: FakeEngine())


async def test_replicas_scale_and_show_in_the_cluster_view(serve: ServeFactory, tmp_path) -> None:  # type: ignore[no-untyped-def]
    config = load_config(home=tmp_path / "home", n_slots=4, n_ctx=4 * 512, cluster="auto", replicas="2")
    s = await serve(config=config, replica_hosts=thread_replicas)
    assert (await s.client.post("/api/load", json={"model": "fake:1"})).status_code == 200
    view = (await s.client.get("/api/cluster")).json()
    assert view["enabled"] and view["address"] == "local"
    (model,) = view["models"]
    assert model["model"] == "fake:1" and [r["state"] for r in model["replicas"]] == ["serving", "serving"]
    for _ in range(3):
        r = await s.client.post(
            "/v1/chat/completions", json={"model": "fake:1", "messages": MSG, "max_tokens": 4}
        )
        assert r.status_code == 200, r.text
    routed = (await s.client.get("/api/cluster")).json()["models"][0]["routed"]
    assert routed == {"affinity": 2, "spill": 0, "load": 1}  # the shared system prompt stayed put
    scaled = await s.client.post("/api/scale", json={"model": "fake:1", "replicas": 3})
    assert scaled.status_code == 200 and scaled.json() == {"model": "fake:1", "replicas": 3}
    assert len((await s.client.get("/api/cluster")).json()["models"][0]["replicas"]) == 3
    assert (await s.client.post("/api/scale", json={"model": "fake:1", "replicas": 1})).json()[
        "replicas"
    ] == 1
    events = (await s.client.get("/api/resources/events")).json()["events"]
    kinds = [e["kind"] for e in events]
    assert kinds.count("replica_started") == 2 and "scale_up" in kinds and kinds.count("scale_down") == 2
    assert all(e["reason"] for e in events)
    ps = (await s.client.get("/api/ps")).json()["models"]
    assert ps[0]["name"] == "fake:1" and ps[0]["state"] == "ready"
    assert (await s.client.post("/api/scale", json={"model": "fake:1", "replicas": 0})).status_code == 400


async def test_on_one_machine_the_cluster_view_says_so_and_scaling_is_refused(serve: ServeFactory) -> None:
    s = await serve()
    assert (await s.client.get("/api/cluster")).json() == {
        "enabled": False,
        "address": None,
        "nodes": [],
        "models": [],
    }
    r = await s.client.post("/api/scale", json={"model": "fake:1", "replicas": 2})
    assert r.status_code == 409 and "--cluster" in r.json()["error"]["message"]
