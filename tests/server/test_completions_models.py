from __future__ import annotations

import json

import pytest

from .conftest import ServeFactory

pytestmark = pytest.mark.anyio


async def test_completion_with_logprobs_and_echo(serve: ServeFactory) -> None:
    s = await serve()
    r = await s.client.post(
        "/v1/completions",
        json={
            "model": "fake:1",
            "prompt": "Once",
            "max_tokens": 6,
            "logprobs": 2,
            "echo": True,
            "temperature": 0,
        },
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["object"] == "text_completion"
    choice = body["choices"][0]
    assert choice["text"].startswith("Once") and len(choice["text"]) == 4 + 6
    lp = choice["logprobs"]
    assert len(lp["tokens"]) == 6 and len(lp["top_logprobs"]) == 6
    assert lp["text_offset"][0] == 4
    assert body["usage"]["completion_tokens"] == 6


async def test_completion_list_of_prompts_times_n(serve: ServeFactory) -> None:
    s = await serve()
    r = await s.client.post(
        "/v1/completions", json={"model": "fake:1", "prompt": ["a", "bb"], "n": 2, "max_tokens": 3}
    )
    body = r.json()
    assert [c["index"] for c in body["choices"]] == [0, 1, 2, 3]
    assert body["usage"]["completion_tokens"] == 12


async def test_completion_stream(serve: ServeFactory) -> None:
    s = await serve()
    r = await s.client.post(
        "/v1/completions",
        json={
            "model": "fake:1",
            "prompt": "x",
            "max_tokens": 5,
            "stream": True,
            "stream_options": {"include_usage": True},
        },
    )
    parts = [p for p in r.text.split("\n\n") if p]
    assert parts[-1] == "data: [DONE]"
    chunks = [json.loads(p.removeprefix("data: ")) for p in parts[:-1]]
    assert "".join(c["choices"][0]["text"] for c in chunks if c["choices"]) != ""
    assert chunks[-1]["usage"]["completion_tokens"] == 5


async def test_models_list_and_retrieve(serve: ServeFactory) -> None:
    s = await serve(models=["fake:1", "other:2"])
    r = await s.client.get("/v1/models")
    assert r.json()["object"] == "list"
    assert [m["id"] for m in r.json()["data"]] == ["fake:1", "other:2"]
    one = (await s.client.get("/v1/models/other:2")).json()
    assert one == {"id": "other:2", "object": "model", "created": one["created"], "owned_by": "llmos"}
    missing = await s.client.get("/v1/models/nope:1")
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "model_not_found"


async def test_health_ready_and_openapi(serve: ServeFactory) -> None:
    s = await serve()
    assert (await s.client.get("/health")).json()["status"] == "ok"
    assert (await s.client.get("/ready")).status_code == 200
    spec = (await s.client.get("/openapi.json")).json()
    assert "/v1/chat/completions" in spec["paths"] and "/api/pull" in spec["paths"]
