"""The data routes that spend tokens go through the same guards as chat.

The probe: a key restricted to ``other:*`` made a collection that embeds with a hidden model,
uploaded and searched (the upload told hidden models from missing ones); a tenant whose token
budget and request rate were spent still ingested ~117k embedded tokens and ran 20 searches,
and its usage showed 61 tokens.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from .conftest import Served, ServeFactory

pytestmark = pytest.mark.anyio

TEXT = b"Llamas hum when they are content. Alpacas are smaller than llamas and spit less often.\n" * 20


async def _key(s: Served, tenant: str, **body: Any) -> str:
    r = await s.client.post("/api/keys", json={"tenant": tenant, **body}, headers=s.auth(s.admin_key))
    assert r.status_code == 201, r.text
    return str(r.json()["key"])


async def _collection(s: Served, key: str, name: str, model: str) -> httpx.Response:
    # Small chunks: a retrieved one fits the fake engine's 512-token (byte) context.
    body = {"name": name, "embedding_model": model, "chunk_tokens": 32, "chunk_overlap": 4}
    return await s.client.post("/api/collections", json=body, headers=s.auth(key))


async def _upload(s: Served, key: str, collection: str, body: bytes = TEXT) -> httpx.Response:
    return await s.client.post(
        f"/api/collections/{collection}/documents",
        params={"name": "llamas.txt"},
        content=body,
        headers={**s.auth(key), "content-type": "text/plain"},
    )


async def _search(s: Served, key: str, collection: str, mode: str = "hybrid") -> httpx.Response:
    return await s.client.post(
        f"/api/collections/{collection}/search",
        json={"query": "do llamas hum?", "mode": mode},
        headers=s.auth(key),
    )


def _same_as_missing(hidden: httpx.Response, missing: httpx.Response) -> None:
    assert hidden.status_code == missing.status_code == 404, (hidden.text, missing.text)
    h, m = hidden.json()["error"], missing.json()["error"]
    assert (h["type"], h["code"], h["param"]) == (m["type"], m["code"], m["param"])


async def test_a_key_cannot_embed_with_a_model_it_may_not_use(secured: ServeFactory) -> None:
    s = await secured()
    await s.new_tenant("acme")
    other_only = await _key(s, "acme", scopes=["data", "inference"], models=["other:*"])
    _same_as_missing(
        await _collection(s, other_only, "kb", "fake:1"), await _collection(s, other_only, "kb", "nope:1")
    )
    admin_for_acme = {**s.auth(s.admin_key), "x-llmos-tenant": "acme"}
    made = await s.client.post(
        "/api/collections", json={"name": "kb", "embedding_model": "fake:1"}, headers=admin_for_acme
    )
    assert made.status_code == 201, made.text
    upload = await _upload(s, other_only, "kb")
    assert upload.status_code == 404 and upload.json()["error"]["code"] == "model_not_found"
    assert (await _search(s, other_only, "kb")).status_code == 404
    rag = await s.chat(other_only, model="other:1", collections=["kb"])
    assert rag.status_code == 404 and rag.json()["error"]["code"] == "model_not_found"
    listed = await s.client.get("/api/collections/kb/documents", headers=admin_for_acme)
    assert listed.json()["data"] == []  # nothing was stored
    # Keyword search embeds nothing: the embedding model's pattern does not matter to it.
    assert (await _search(s, other_only, "kb", mode="keyword")).status_code == 200


async def test_uploads_and_searches_leave_usage_rows_with_their_tokens(secured: ServeFactory) -> None:
    s = await secured()
    await s.new_tenant("acme")
    key = await _key(s, "acme", scopes=["data", "inference"], models=["fake:*"])
    assert (await _collection(s, key, "kb", "fake:1")).status_code == 201
    assert (await _upload(s, key, "kb")).status_code == 201
    assert (await _search(s, key, "kb")).status_code == 200
    rag = await s.chat(key, collections=["kb"], retrieval={"top_k": 1})
    assert rag.status_code == 200, rag.text
    rows = {r.operation: r for _, r in s.security.store.list_usage(tenant="acme")}
    assert set(rows) == {"document", "search", "chat"}
    assert rows["document"].model == "fake:1" and rows["document"].prompt_tokens > len(TEXT) // 2
    assert rows["document"].status == 201
    assert 0 < rows["search"].prompt_tokens < 40  # the query's tokens ("do llamas hum?")
    # The RAG query's embedding is charged to the chat beside its prompt.
    assert rows["chat"].prompt_tokens > rows["search"].prompt_tokens


async def test_spent_rate_and_budget_stop_ingestion_and_search(secured: ServeFactory) -> None:
    s = await secured()
    await s.new_tenant("acme", limits={"requests_per_minute": 3})
    key = await _key(s, "acme", scopes=["data"], models=["fake:*"])
    assert (await _collection(s, key, "kb", "fake:1")).status_code == 201
    assert (await _upload(s, key, "kb")).status_code == 201
    assert (await _search(s, key, "kb")).status_code == 200
    assert (await _search(s, key, "kb")).status_code == 200
    limited = await _upload(s, key, "kb")
    assert limited.status_code == 429 and limited.headers["retry-after"]
    assert (await _search(s, key, "kb")).status_code == 429

    s.clock.advance(61)
    budget = await s.client.patch(
        "/api/tenants/acme",
        json={"limits": {"requests_per_minute": None, "token_budget": 100, "budget_period": "day"}},
        headers=s.auth(s.admin_key),
    )
    assert budget.status_code == 200
    spent = await _upload(s, key, "kb")  # the budget's first request may pass it (by one request)
    assert spent.status_code in (201, 429)
    for r in (await _upload(s, key, "kb"), await _search(s, key, "kb")):
        assert r.status_code == 429 and r.json()["error"]["code"] == "insufficient_quota", r.text
    summary = (await s.client.get("/api/usage", headers=s.auth(s.admin_key))).json()["data"]
    used = {u["tenant"]: u["prompt_tokens"] for u in summary}
    assert used["acme"] > 2 * len(TEXT) // 2  # every embedded token was booked
