from __future__ import annotations

import json

import pytest

from .conftest import ServeFactory

pytestmark = pytest.mark.anyio


async def test_pull_streams_ndjson_progress_then_lists(serve: ServeFactory) -> None:
    s = await serve(models=[], catalog=["cat:1"])
    r = await s.client.post("/api/pull", json={"model": "cat:1"})
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("application/x-ndjson")
    events = [json.loads(line) for line in r.text.splitlines()]
    assert [e["completed"] for e in events[:-1]] == [0, 500, 1000]
    assert events[-1]["done"] is True and events[-1]["status"] == "success"
    names = [m["name"] for m in (await s.client.get("/api/models")).json()["models"]]
    assert names == ["cat:1"]


async def test_pull_as_sse_and_unknown_pull_is_an_error_status(serve: ServeFactory) -> None:
    s = await serve(models=[], catalog=["cat:1"])
    r = await s.client.post("/api/pull", json={"model": "cat:1"}, headers={"accept": "text/event-stream"})
    assert r.text.startswith("data: ")
    bad = await s.client.post("/api/pull", json={"model": "nowhere:1"})
    assert bad.status_code == 404 and bad.json()["error"]["code"] == "model_not_found"
    assert (await s.client.post("/api/pull", json={"model": "a:b:c"})).status_code == 400


async def test_pull_without_stream_returns_the_last_event(serve: ServeFactory) -> None:
    s = await serve(models=[], catalog=["cat:1"])
    r = await s.client.post("/api/pull", json={"model": "cat:1", "stream": False})
    assert r.json()["done"] is True


async def test_import_show_copy_delete(serve: ServeFactory, tmp_path) -> None:  # type: ignore[no-untyped-def]
    s = await serve(models=[])
    f = tmp_path / "m.gguf"
    f.write_bytes(b"x" * 64)
    r = await s.client.post("/api/import", json={"path": str(f), "model": "mine:1", "stream": False})
    assert r.status_code == 200, r.text
    shown = (await s.client.get("/api/models/mine:1")).json()
    assert shown["name"] == "mine:1" and shown["size"] == 64 and len(shown["versions"]) == 1
    copied = await s.client.post("/api/models/copy", json={"source": "mine:1", "destination": "yours:1"})
    assert copied.json()["name"] == "yours:1"
    dup = await s.client.post("/api/models/copy", json={"source": "mine:1", "destination": "yours:1"})
    assert dup.status_code == 409
    assert (await s.client.delete("/api/models/mine:1")).json() == {"model": "mine:1", "deleted": True}
    assert (await s.client.get("/api/models/mine:1")).status_code == 404
    assert (await s.client.delete("/api/models/mine:1")).status_code == 404


async def test_load_ps_unload(serve: ServeFactory) -> None:
    s = await serve()
    assert (await s.client.get("/api/ps")).json() == {"models": []}
    loaded = (await s.client.post("/api/load", json={"model": "fake:1", "keep_alive": -1})).json()
    assert loaded["name"] == "fake:1" and loaded["state"] == "ready" and loaded["keep_alive"] is None
    ps = (await s.client.get("/api/ps")).json()["models"]
    assert [m["name"] for m in ps] == ["fake:1"]
    assert ps[0]["estimated_bytes"] > 0
    r = await s.client.post("/api/unload", json={"model": "fake:1"})
    assert r.json() == {"model": "fake:1", "unloaded": True}
    assert (await s.client.get("/api/ps")).json() == {"models": []}
    again = await s.client.post("/api/unload", json={"model": "fake:1"})
    assert again.status_code == 404


async def test_load_unknown_model_is_404(serve: ServeFactory) -> None:
    s = await serve()
    r = await s.client.post("/api/load", json={"model": "ghost:1"})
    assert r.status_code == 404 and r.json()["error"]["code"] == "model_not_found"


async def test_a_chat_loads_the_model_once_for_concurrent_requests(serve: ServeFactory) -> None:
    import asyncio

    s = await serve()
    body = {"model": "fake:1", "messages": [{"role": "user", "content": "x"}], "max_tokens": 2}
    rs = await asyncio.gather(*(s.client.post("/v1/chat/completions", json=body) for _ in range(5)))
    assert all(r.status_code == 200 for r in rs)
    assert len(s.engines) == 1, "one load shared by every waiting request"


async def test_a_dead_engine_fails_its_requests_and_the_next_request_gets_a_fresh_one(
    serve: ServeFactory,
) -> None:
    s = await serve()
    body = {"model": "fake:1", "messages": [{"role": "user", "content": "x"}], "max_tokens": 3}
    assert (await s.client.post("/v1/chat/completions", json=body)).status_code == 200
    s.engines[0].kill()
    dead = await s.client.post("/v1/chat/completions", json=body)
    assert dead.status_code == 503 and dead.json()["error"]["code"] == "engine_dead"
    assert dead.headers["retry-after"] == "5"  # the next request starts a fresh engine
    again = await s.client.post("/v1/chat/completions", json=body)
    assert again.status_code == 200, again.text
    assert len(s.engines) == 2, "a fresh engine was started"


async def test_a_name_repointed_to_a_new_version_reloads(serve: ServeFactory) -> None:
    from dataclasses import replace

    s = await serve()
    body = {"model": "fake:1", "messages": [{"role": "user", "content": "x"}], "max_tokens": 2}
    assert (await s.client.post("/v1/chat/completions", json=body)).status_code == 200
    registry = s.kernel.registry
    old = registry.models["fake:1"]  # type: ignore[attr-defined]
    registry.models["fake:1"] = replace(old, digest="f" * 64, parent=old.digest)  # type: ignore[attr-defined]
    assert (await s.client.post("/v1/chat/completions", json=body)).status_code == 200
    assert len(s.engines) == 2
    assert (await s.client.get("/api/ps")).json()["models"][0]["digest"] == "f" * 64
