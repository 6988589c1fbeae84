"""The smaller doors the probe found open, each closed over HTTP with auth on: /metrics and the
API docs need a key, ``user`` cannot invent tenants, client request ids do not collide across
tenants, bodies that are not Unicode are a 400, ``/api/import`` stays inside a folder for
non-admin keys, and ``logit_bias`` is applied."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from llmos.engine.fake import BYTE_OFFSET

from .conftest import Served, ServeFactory

pytestmark = pytest.mark.anyio


async def _key(s: Served, tenant: str, **body: Any) -> str:
    r = await s.client.post("/api/keys", json={"tenant": tenant, **body}, headers=s.auth(s.admin_key))
    assert r.status_code == 201, r.text
    return str(r.json()["key"])


async def test_metrics_need_a_key_with_metrics_read(secured: ServeFactory) -> None:
    s = await secured()
    plain = await s.new_tenant("acme")
    assert (await s.chat(plain)).status_code == 200
    assert (await s.client.get("/metrics")).status_code == 401
    assert (await s.client.get("/metrics", headers=s.auth(plain))).status_code == 403
    scraper = await _key(s, "acme", scopes=["metrics:read"])
    scraped = await s.client.get("/metrics", headers=s.auth(scraper))
    assert scraped.status_code == 200 and 'tenant="acme"' in scraped.text
    assert (await s.client.get("/metrics", headers=s.auth(s.admin_key))).status_code == 200
    assert (await s.client.get("/health")).status_code == 200  # probes stay open


async def test_api_docs_need_a_key(secured: ServeFactory) -> None:
    s = await secured()
    key = await s.new_tenant("acme", scopes=["inference"])
    for path in ("/openapi.json", "/docs", "/redoc"):
        assert (await s.client.get(path)).status_code == 401, path
        assert (await s.client.get(path, headers=s.auth(key))).status_code == 200, path
    spec = (await s.client.get("/openapi.json", headers=s.auth(key))).json()
    assert "/v1/chat/completions" in spec["paths"] and "/openapi.json" not in spec["paths"]


async def test_user_books_usage_only_to_a_tenant_that_exists(secured: ServeFactory) -> None:
    s = await secured()
    await s.new_tenant("acme")
    for user in ("../../evil tenant\n", "end-user-42", "acme"):
        assert (await s.chat(s.admin_key, user=user)).status_code == 200
    emb = await s.client.post(
        "/v1/embeddings",
        json={"model": "fake:1", "input": "x", "user": "nobody"},
        headers=s.auth(s.admin_key),
    )
    assert emb.status_code == 200
    tenants = sorted(u.tenant for _, u in s.security.store.list_usage())
    assert tenants == ["acme", "local", "local", "local"]
    unknown = await s.chat(s.admin_key, headers={"x-llmos-tenant": "ghost"})
    assert unknown.status_code == 404 and "llmos tenants create ghost" in unknown.json()["error"]["message"]
    metrics = (await s.client.get("/metrics", headers=s.auth(s.admin_key))).text
    assert "evil" not in metrics and "end-user-42" not in metrics and "ghost" not in metrics


async def test_the_same_client_request_id_from_two_tenants(secured: ServeFactory) -> None:
    s = await secured(load_extra={"step_cost_s": 0.005})
    acme, globex = await s.new_tenant("acme"), await s.new_tenant("globex")
    same = {"x-request-id": "req-1"}
    a, b = await asyncio.gather(
        s.chat(acme, headers=same, max_tokens=30), s.chat(globex, headers=same, max_tokens=30)
    )
    assert (a.status_code, b.status_code) == (200, 200), (a.text, b.text)
    assert a.headers["x-request-id"] == b.headers["x-request-id"] == "req-1"
    assert a.json()["id"] != b.json()["id"]
    rows = {u.tenant: u.request_id for _, u in s.security.store.list_usage()}
    assert rows == {"acme": "req-1", "globex": "req-1"}  # usage keeps the client's id


async def test_a_lone_surrogate_is_a_400_and_leaves_no_usage_row(secured: ServeFactory) -> None:
    s = await secured()
    key = await s.new_tenant("acme")
    for path, body in (
        ("/v1/chat/completions", b'{"model":"fake:1","messages":[{"role":"user","content":"\\ud800"}]}'),
        (
            "/v1/chat/completions",
            b'{"model":"fake:1","messages":[{"role":"user","content":"x"}],"stop":["\\udfff"]}',
        ),
        ("/v1/embeddings", b'{"model":"fake:1","input":["ok","\\ud800x"]}'),
        (
            "/v1/embeddings",
            b'{"model":"fake:1","input":["' + b"x" * 400_000 + b'\\udc00"]}',
        ),  # checked off the loop
    ):
        r = await s.client.post(
            path, content=body, headers={**s.auth(key), "content-type": "application/json"}
        )
        assert r.status_code == 400, r.text
        assert (
            r.json()["error"]["type"] == "invalid_request_error"
            and "surrogate" in r.json()["error"]["message"]
        )
    pair = b'{"model":"fake:1","messages":[{"role":"user","content":"\\ud83d\\ude00"}],"max_tokens":2}'
    ok = await s.client.post(
        "/v1/chat/completions", content=pair, headers={**s.auth(key), "content-type": "application/json"}
    )
    assert ok.status_code == 200  # a complete pair is an emoji, and fine
    assert [u.status for _, u in s.security.store.list_usage()] == [200]


async def test_tenant_keys_import_only_from_the_import_folder(secured: ServeFactory, tmp_path: Path) -> None:
    imports = tmp_path / "imports"
    imports.mkdir()
    (imports / "mine.gguf").write_bytes(b"GGUF")
    outside = tmp_path / "secret.gguf"
    outside.write_bytes(b"GGUF")
    (imports / "link.gguf").symlink_to(outside)

    async def importing(s: Served, key: str, path: str) -> Any:
        return await s.client.post(
            "/api/import", json={"model": "mine:1", "path": path, "stream": False}, headers=s.auth(key)
        )

    closed = await secured()
    writer = await _key(closed, "local", scopes=["models:write"])
    refused = [await importing(closed, writer, p) for p in (str(outside), "/etc/hostname", "/no/such/file")]
    assert {r.status_code for r in refused} == {403}
    assert len({r.json()["error"]["message"] for r in refused}) == 1  # existing or not, the same answer
    assert "LLMOS_IMPORT_DIR" in refused[0].json()["error"]["message"]

    s = await secured(import_dir=imports)
    writer = await _key(s, "local", scopes=["models:write"])
    assert (await importing(s, writer, "mine.gguf")).status_code == 200
    assert (await importing(s, writer, str(imports / "mine.gguf"))).status_code == 200
    for escape in (str(outside), "../secret.gguf", "link.gguf", "/etc/hostname"):
        assert (await importing(s, writer, escape)).status_code == 403, escape
    assert (await importing(s, s.admin_key, str(outside))).status_code == 200  # admins own the server


async def test_logit_bias_is_applied(secured: ServeFactory) -> None:
    s = await secured()
    key = await s.new_tenant("acme")

    async def text(**body: Any) -> str:
        r = await s.chat(key, max_tokens=12, temperature=0, **body)
        assert r.status_code == 200, r.text
        return str(r.json()["choices"][0]["message"]["content"])

    plain = await text()
    first = str(BYTE_OFFSET + ord(plain[0]))
    assert (await text(logit_bias={first: -100}))[0] != plain[0]
    assert await text(logit_bias={str(BYTE_OFFSET + ord("Z")): 100}) == "Z" * 12
    assert await text(logit_bias={first: 0}) == plain
    for bad in ({"abc": 1}, {"5": 101}, {"-1": 1}, {"99999": -100}):
        r = await s.chat(key, logit_bias=bad)
        assert r.status_code == 400 and r.json()["error"]["param"].startswith("logit_bias"), (bad, r.text)


async def test_a_rejected_request_is_not_charged(secured: ServeFactory) -> None:
    """A token outside the vocabulary is refused by the engine after the prompt was tokenized:
    the request is rejected (400, or an error event in a stream) and books no tokens."""
    s = await secured()
    key = await s.new_tenant("acme")
    bad = {"logit_bias": {"99999": -100}}
    plain = await s.chat(key, **bad)
    assert plain.status_code == 400 and plain.json()["error"]["param"] == "logit_bias"
    streamed = await s.chat(key, stream=True, **bad)
    assert streamed.status_code == 200 and '"param":"logit_bias"' in streamed.text.replace(" ", "")
    assert streamed.text.rstrip().endswith("data: [DONE]")
    rows = [u for _, u in s.security.store.list_usage()]
    assert sorted(u.status for u in rows) == [400, 400]  # the stream is booked with its error
    assert all(u.prompt_tokens == u.completion_tokens == 0 for u in rows)
