"""``POST /v1/embeddings`` over fake engines: OpenAI's shapes, encodings, errors, scopes, the SDK
and the official ``openai`` client."""

from __future__ import annotations

import base64
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import openai
import pytest

from kernel.fakes import manifest
from llmos.engine.sentence_transformers_engine import SentenceTransformersEngine
from llmos.sdk import AsyncClient
from llmos.security.principal import Principal
from llmos.server.auth import principal

from .conftest import CHAT_MODEL, EMBEDDING_MODEL, AppFactory

pytestmark = pytest.mark.anyio


async def test_float_response_has_openai_shape_and_usage(fake_app: AppFactory) -> None:
    s = await fake_app()
    r = await s.client.post("/v1/embeddings", json={"model": EMBEDDING_MODEL, "input": ["hello", "world!"]})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["object"] == "list" and body["model"] == EMBEDDING_MODEL
    assert [d["index"] for d in body["data"]] == [0, 1]
    assert all(d["object"] == "embedding" and len(d["embedding"]) == 32 for d in body["data"])
    assert body["usage"] == {"prompt_tokens": 6 + 7, "total_tokens": 6 + 7}
    assert r.headers["x-request-id"]


@pytest.mark.parametrize(
    ("payload", "n"),
    [("one text", 1), (["a", "b", "c"], 3), ([1, 2, 3], 1), ([[1, 2], [3], [4, 5, 6]], 3)],
)
async def test_every_openai_input_shape(fake_app: AppFactory, payload: Any, n: int) -> None:
    s = await fake_app()
    r = await s.client.post("/v1/embeddings", json={"model": CHAT_MODEL, "input": payload})
    assert r.status_code == 200, r.text
    assert len(r.json()["data"]) == n


async def test_base64_is_little_endian_float32_of_the_same_vectors(fake_app: AppFactory) -> None:
    s = await fake_app()
    plain = await s.client.post("/v1/embeddings", json={"model": EMBEDDING_MODEL, "input": "hi"})
    packed = await s.client.post(
        "/v1/embeddings", json={"model": EMBEDDING_MODEL, "input": "hi", "encoding_format": "base64"}
    )
    raw = packed.json()["data"][0]["embedding"]
    assert isinstance(raw, str)
    decoded = np.frombuffer(base64.b64decode(raw), dtype="<f4")
    assert np.allclose(decoded, plain.json()["data"][0]["embedding"], atol=1e-6)


@pytest.mark.parametrize(
    ("payload", "status", "needle"),
    [
        ({"input": []}, 400, "must not be empty"),
        ({"input": ""}, 400, "empty string"),
        ({"input": ["a", 1]}, 400, "input"),
        ({"input": "x", "encoding_format": "int8"}, 400, "encoding_format"),
        ({"input": "x", "dimensions": 7}, 400, "32 dimensions"),
        ({"input": ["x"] * 2049}, 400, "at most 2048"),
        ({"input": "x", "model": "nope:1"}, 404, "not found"),
    ],
)
async def test_bad_requests(fake_app: AppFactory, payload: dict[str, Any], status: int, needle: str) -> None:
    s = await fake_app()
    r = await s.client.post("/v1/embeddings", json={"model": EMBEDDING_MODEL, **payload})
    assert r.status_code == status, r.text
    assert needle in r.json()["error"]["message"]


async def test_chat_with_an_embedding_model_is_a_400(fake_app: AppFactory) -> None:
    s = await fake_app()
    r = await s.client.post(
        "/v1/chat/completions",
        json={"model": EMBEDDING_MODEL, "messages": [{"role": "user", "content": "hi"}]},
    )
    assert r.status_code == 400
    assert r.json()["error"]["message"].startswith(f"model {EMBEDDING_MODEL} is an embedding model")


@pytest.mark.parametrize(
    ("who", "needle"),
    [
        (Principal(tenant="t", scopes=frozenset({"inference"})), "'embeddings' scope"),
        (Principal(tenant="t", scopes=frozenset({"embeddings"}), model_patterns=("fake:*",)), "may not use"),
    ],
)
async def test_scope_and_model_are_checked(fake_app: AppFactory, who: Principal, needle: str) -> None:
    s = await fake_app()
    s.app.dependency_overrides[principal] = lambda: who
    r = await s.client.post("/v1/embeddings", json={"model": EMBEDDING_MODEL, "input": "x"})
    assert r.status_code == 403 and needle in r.json()["error"]["message"]


@pytest.fixture
def no_torch(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """As if torch were not installed. The modules imported meanwhile are dropped afterwards:
    transformers caches ``is_torch_available()`` at import, and a copy imported while torch was
    hidden would break every later test that uses it."""
    before = set(sys.modules)
    monkeypatch.setitem(sys.modules, "torch", None)
    yield
    for name in set(sys.modules) - before:
        if not name.startswith("llmos"):  # third-party copies only: llmos's own classes stay one
            del sys.modules[name]


@pytest.mark.usefixtures("no_torch")
async def test_without_the_ml_extra_loading_says_what_to_install(
    fake_app: AppFactory, tmp_path: Path
) -> None:
    s = await fake_app(engine_factory=lambda backend: SentenceTransformersEngine())
    folder = tmp_path / manifest(EMBEDDING_MODEL).digest
    folder.mkdir()
    (folder / "modules.json").write_text("[]")
    r = await s.client.post("/v1/embeddings", json={"model": EMBEDDING_MODEL, "input": "x"})
    assert r.status_code == 501, r.text
    err = r.json()["error"]
    assert err["code"] == "missing_dependency" and "pip install 'llmos[ml]'" in err["message"]


async def test_sdk_async_client(fake_app: AppFactory) -> None:
    s = await fake_app()
    transport = httpx.ASGITransport(app=s.app)
    async with AsyncClient("http://test", transport=transport) as client:
        result = await client.embeddings.create(EMBEDDING_MODEL, ["alpha", "beta"])
        single = await client.embeddings.create(EMBEDDING_MODEL, "alpha")
    assert result.model == EMBEDDING_MODEL and result.prompt_tokens == 6 + 5
    assert len(result.vectors) == 2 and len(result.vectors[0]) == 32
    assert np.allclose(single.vectors[0], result.vectors[0], atol=1e-6)
    assert not np.allclose(result.vectors[0], result.vectors[1])


async def test_official_openai_client_decodes_base64(fake_app: AppFactory) -> None:
    s = await fake_app()
    sent: list[dict[str, Any]] = []

    async def capture(request: httpx.Request) -> None:
        sent.append(json.loads(request.content))

    http = httpx.AsyncClient(
        transport=httpx.ASGITransport(app=s.app), base_url="http://test", event_hooks={"request": [capture]}
    )
    client = openai.AsyncOpenAI(base_url="http://test/v1", api_key="unused", http_client=http)
    try:
        default = await client.embeddings.create(model=EMBEDDING_MODEL, input=["hello", "world!"])
        floats = await client.embeddings.create(
            model=EMBEDDING_MODEL, input=["hello", "world!"], encoding_format="float"
        )
    finally:
        await client.close()
    assert sent[0]["encoding_format"] == "base64" and sent[1]["encoding_format"] == "float"
    assert default.usage.prompt_tokens == 13
    assert len(default.data) == 2 and len(default.data[0].embedding) == 32
    for a, b in zip(default.data, floats.data, strict=True):
        assert np.allclose(a.embedding, b.embedding, atol=1e-6)


async def test_each_request_leaves_a_usage_row(fake_app: AppFactory) -> None:
    s = await fake_app()
    r = await s.client.post("/v1/embeddings", json={"model": EMBEDDING_MODEL, "input": ["hello", "world!"]})
    assert r.status_code == 200
    usage = await s.client.get("/api/usage", params={"group_by": "model"})
    rows = [row for row in usage.json()["data"] if row.get("model") == EMBEDDING_MODEL]
    assert rows and rows[0]["requests"] == 1 and rows[0]["prompt_tokens"] == 13
