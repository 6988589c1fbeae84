"""The data API over HTTP with real API keys of two tenants: uploads, search, versions,
isolation (a tenant never sees, searches or deletes another's data), datasets, and
retrieval-augmented chat with citations (streamed and not)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

import llmos.kernel.kernel as kernel_module
from kernel.fakes import MemoryRegistry, inventory, manifest  # tests/ is on sys.path
from llmos.config import load_config
from llmos.engine.fake import FakeEngine
from llmos.kernel import Kernel, build_kernel
from llmos.security.service import local_admin
from llmos.server import create_app
from llmos.storage.db import Database

from .conftest import make_service
from .fakes import HashEmbedder

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class Api:
    def __init__(self, kernel: Kernel, client: httpx.AsyncClient, keys: dict[str, str]) -> None:
        self.kernel = kernel
        self.client = client
        self.keys = keys

    def as_(self, who: str) -> dict[str, str]:
        return {"authorization": f"Bearer {self.keys[who]}"}


@pytest.fixture
async def api(database: Database, tmp_path: Path) -> AsyncIterator[Api]:
    # The fake tokenizer spends a token per byte: 4096 tokens per sequence hold the retrieval tests.
    config = load_config(home=tmp_path / "home", auth="required", n_slots=4, n_ctx=16384)
    kernel = build_kernel(
        config,
        registry=MemoryRegistry(tmp_path, [manifest("fake:1"), manifest("fake:embed")]),
        engine_factory=lambda backend: FakeEngine(),
        inventory=inventory(),
        database=database,
        data=make_service(database, HashEmbedder(), tmp_path),
    )
    admin = local_admin(config)
    keys = {}
    for tenant, scopes in (
        ("a", ["data", "inference"]),
        ("b", ["data", "inference"]),
        ("a-chat", ["inference"]),
    ):
        owner = tenant.split("-")[0]
        kernel.security.ensure_tenant(owner)
        _, secret = kernel.security.create_key(admin, tenant=owner, name=tenant, scopes=scopes)
        keys[tenant] = secret
    app = create_app(kernel)
    lifespan = app.router.lifespan_context(app)
    await lifespan.__aenter__()
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://test", timeout=60
    ) as c:
        yield Api(kernel, c, keys)
    await lifespan.__aexit__(None, None, None)


async def _upload(
    api: Api, who: str, collection: str, name: str, body: bytes, **params: Any
) -> httpx.Response:
    return await api.client.post(
        f"/api/collections/{collection}/documents",
        params={"name": name, **params},
        content=body,
        headers=api.as_(who),
    )


async def test_documents_over_http(api: Api) -> None:
    r = await api.client.post(
        "/api/collections", json={"name": "kb", "chunk_tokens": 64}, headers=api.as_("a")
    )
    assert r.status_code == 201, r.text
    assert r.json()["embedding_model"] == "fake:embed"
    r = await _upload(
        api, "a", "kb", "guide.md", b"# Setup\n\nInstall the widget with pip.", metadata='{"lang": "en"}'
    )
    assert r.status_code == 201, r.text
    doc = r.json()
    assert (doc["version"], doc["content_type"], doc["metadata"]["lang"]) == (1, "md", "en")
    r = await _upload(api, "a", "kb", "guide.md", b"# Setup\n\nInstall the widget with uv.")
    assert r.json()["version"] == 2
    await _upload(api, "a", "kb", "other.txt", b"Unrelated notes on gardening.")
    r = await api.client.post(
        "/api/collections/kb/search", json={"query": "install widget", "top_k": 2}, headers=api.as_("a")
    )
    assert r.status_code == 200, r.text
    hits = r.json()["data"]
    assert hits[0]["document"] == "guide.md" and hits[0]["version"] == 2 and "uv" in hits[0]["text"]
    listing = (
        await api.client.get("/api/collections/kb/documents?all_versions=true", headers=api.as_("a"))
    ).json()
    assert sorted((d["name"], d["version"]) for d in listing["data"]) == [
        ("guide.md", 1),
        ("guide.md", 2),
        ("other.txt", 1),
    ]
    cols = (await api.client.get("/api/collections", headers=api.as_("a"))).json()["data"]
    assert [(c["name"], c["documents"], c["dimensions"]) for c in cols] == [("kb", 2, 64)]
    r = await api.client.delete(
        "/api/collections/kb/documents", params={"name": "guide.md"}, headers=api.as_("a")
    )
    assert [d["version"] for d in r.json()["data"]] == [1, 2]
    r = await api.client.delete("/api/collections/kb", headers=api.as_("a"))
    assert r.json() == {"deleted": True}


async def test_bad_uploads_get_openai_error_bodies(api: Api) -> None:
    await api.client.post("/api/collections", json={"name": "kb"}, headers=api.as_("a"))
    r = await _upload(api, "a", "kb", "x.bin", b"\x00", content_type="image/png")
    assert r.status_code == 400 and "unsupported content type" in r.json()["error"]["message"]
    # A generic Content-Type (curl --data-binary sends a form type) leaves the format to the name.
    r = await api.client.post(
        "/api/collections/kb/documents",
        params={"name": "page.html"},
        content=b"<p>Hello <b>there</b></p>",
        headers={**api.as_("a"), "content-type": "application/x-www-form-urlencoded"},
    )
    assert r.status_code == 201 and r.json()["content_type"] == "html", r.text
    r = await _upload(api, "a", "kb", "x.txt", b"hello", metadata="[1]")
    assert r.status_code == 400 and r.json()["error"]["param"] == "metadata"
    r = await _upload(api, "a", "missing", "x.txt", b"hello")
    assert r.status_code == 404
    r = await api.client.post("/api/collections", json={"name": "kb"}, headers=api.as_("a"))
    assert r.status_code == 409


async def test_a_tenant_never_sees_lists_searches_or_deletes_anothers_data(api: Api) -> None:
    for who in ("a", "b"):
        await api.client.post("/api/collections", json={"name": "kb"}, headers=api.as_(who))
    doc_a = (await _upload(api, "a", "kb", "secret.txt", b"Tenant A's launch code is swordfish.")).json()
    await _upload(api, "b", "kb", "public.txt", b"Tenant B writes about launch schedules.")
    # B searches its own "kb": never A's chunks, even for A's exact words.
    for mode in ("hybrid", "vector", "keyword"):
        r = await api.client.post(
            "/api/collections/kb/search",
            json={"query": "launch code swordfish", "mode": mode},
            headers=api.as_("b"),
        )
        assert r.status_code == 200
        assert all(h["document"] == "public.txt" for h in r.json()["data"]), mode
    r = await api.client.get("/api/collections/kb/documents", headers=api.as_("b"))
    assert [d["name"] for d in r.json()["data"]] == ["public.txt"]
    # A's document id is unknown to B: read, delete, and delete-by-name are 404s.
    assert (
        await api.client.get(f"/api/collections/kb/documents/{doc_a['id']}", headers=api.as_("b"))
    ).status_code == 404
    assert (
        await api.client.delete(f"/api/collections/kb/documents/{doc_a['id']}", headers=api.as_("b"))
    ).status_code == 404
    r = await api.client.delete(
        "/api/collections/kb/documents", params={"name": "secret.txt"}, headers=api.as_("b")
    )
    assert r.status_code == 404
    # B's chat over "kb" retrieves nothing of A's.
    r = await api.client.post(
        "/v1/chat/completions",
        json={
            "model": "fake:1",
            "messages": [{"role": "user", "content": "launch code swordfish?"}],
            "max_tokens": 4,
            "collections": ["kb"],
        },
        headers=api.as_("b"),
    )
    assert r.status_code == 200, r.text
    assert {c["document"] for c in r.json()["citations"]} == {"public.txt"}
    # A still has everything.
    r = await api.client.get(f"/api/collections/kb/documents/{doc_a['id']}", headers=api.as_("a"))
    assert r.status_code == 200 and r.json()["name"] == "secret.txt"
    # Deleting B's collection leaves A's.
    await api.client.delete("/api/collections/kb", headers=api.as_("b"))
    assert (await api.client.get("/api/collections/kb", headers=api.as_("a"))).json()["documents"] == 1


async def test_data_routes_need_a_key_with_the_data_scope(api: Api) -> None:
    assert (await api.client.get("/api/collections")).status_code == 401
    r = await api.client.get("/api/collections", headers=api.as_("a-chat"))
    assert r.status_code == 403 and "data" in r.json()["error"]["message"]
    r = await api.client.post(
        "/v1/chat/completions",
        json={
            "model": "fake:1",
            "messages": [{"role": "user", "content": "hi"}],
            "max_tokens": 2,
            "collections": ["kb"],
        },
        headers=api.as_("a-chat"),
    )
    assert r.status_code == 403


async def test_retrieval_augmented_chat_puts_chunks_in_the_prompt_and_cites_them(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    await api.client.post("/api/collections", json={"name": "handbook"}, headers=api.as_("a"))
    await _upload(api, "a", "handbook", "leave.md", b"Employees get 25 days of paid leave per year.")
    await _upload(api, "a", "handbook", "travel.md", b"Book travel through the portal two weeks ahead.")
    seen = _spy_on_chat(api, monkeypatch)
    body = {
        "model": "fake:1",
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "How many days of paid leave?"},
        ],
        "max_tokens": 4,
        "collections": ["handbook"],
        "retrieval": {"top_k": 1},
    }
    r = await api.client.post("/v1/chat/completions", json=body, headers=api.as_("a"))
    assert r.status_code == 200, r.text
    citations = r.json()["citations"]
    assert len(citations) == 1
    assert citations[0]["document"] == "leave.md" and citations[0]["chunk"] == 0
    assert citations[0]["document_id"] > 0 and citations[0]["score"] > 0
    system = seen[-1][0]
    assert system["role"] == "system" and system["content"].startswith("Be brief.")
    assert "[1] leave.md (chunk 0)\nEmployees get 25 days of paid leave per year." in system["content"]
    assert len(seen[-1]) == 2, "the context joins the existing system message"

    # Streamed: the chunk that finishes the choice (and the usage chunk) carries the citations.
    body |= {"stream": True, "stream_options": {"include_usage": True}}
    async with api.client.stream("POST", "/v1/chat/completions", json=body, headers=api.as_("a")) as resp:
        events = [
            json.loads(line[5:])
            async for line in resp.aiter_lines()
            if line.startswith("data:") and "[DONE]" not in line
        ]
    finishing = [e for e in events if e["choices"] and e["choices"][0]["finish_reason"]]
    assert finishing and finishing[0]["citations"][0]["document"] == "leave.md"
    assert events[-1]["usage"] and events[-1]["citations"] == finishing[0]["citations"]
    assert all("citations" not in e for e in events if e not in finishing and e is not events[-1])

    # Without collections the response has no citations field at all (plain OpenAI shape).
    plain = {"model": "fake:1", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}
    r = await api.client.post("/v1/chat/completions", json=plain, headers=api.as_("a"))
    assert "citations" not in r.json()
    r = await api.client.post(
        "/v1/chat/completions", json=plain | {"collections": ["nope"]}, headers=api.as_("a")
    )
    assert r.status_code == 404


async def test_retrieval_fits_the_passages_to_the_models_context(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    # 16384 cells over 4 slots, but never more per sequence than the model was trained on (2048).
    assert await api.kernel.context_per_sequence("fake:1") == 2048
    await api.client.post("/api/collections", json={"name": "hr"}, headers=api.as_("a"))
    for n in range(5):
        words = " ".join(f"leave{n} rule{i} applies to paid leave days" for i in range(25))
        await _upload(api, "a", "hr", f"leave{n}.md", words.encode())
    monkeypatch.setattr(api.kernel, "context_per_sequence", _fixed(600))  # a small model's context
    seen = _spy_on_chat(api, monkeypatch)
    body = {
        "model": "fake:1",
        "messages": [{"role": "user", "content": "How many days of paid leave?"}],
        "max_tokens": 64,
        "collections": ["hr"],
        "retrieval": {"top_k": 5},
    }
    r = await api.client.post("/v1/chat/completions", json=body, headers=api.as_("a"))
    assert r.status_code == 200, r.text
    citations = r.json()["citations"]
    system = seen[-1][0]["content"]
    assert 1 <= len(citations) < 5, "only what fits goes in, and only that is cited"
    assert all(f"[{n}] {c['document']} (chunk {c['chunk']})" in system for n, c in enumerate(citations, 1))
    # 600 tokens: 64 for the answer, 48 for the template, the messages at 3 characters a token.
    assert (len(system) + len(body["messages"][0]["content"])) / 3 <= 600 - 64 - 48


def _spy_on_chat(api: Api, monkeypatch: pytest.MonkeyPatch) -> list[list[dict[str, Any]]]:
    """The messages of every chat the kernel plans (retrieved context included), from now on."""
    seen: list[list[dict[str, Any]]] = []
    real_plan = kernel_module.plan_chat

    def spy(messages: Any, **kwargs: Any) -> Any:
        seen.append(list(messages))
        return real_plan(messages, **kwargs)

    monkeypatch.setattr(kernel_module, "plan_chat", spy)
    return seen


def _fixed(tokens: int) -> Any:
    async def context_per_sequence(name: str) -> int:
        return tokens

    return context_per_sequence


async def test_datasets_over_http(api: Api) -> None:
    chat = (
        b'{"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello there!"}]}\n'
        * 3
    )
    r = await api.client.post(
        "/api/datasets", params={"name": "greetings"}, content=chat, headers=api.as_("a")
    )
    assert r.status_code == 201, r.text
    ds = r.json()
    assert (ds["format"], ds["lines"], ds["size"], ds["version"]) == ("chat", 3, len(chat), 1)
    assert ds["tokens"] > 0
    bad = b'{"prompt": "a", "completion": "b"}\n{"prompt": 1}\nnot json\n'
    r = await api.client.post("/api/datasets", params={"name": "bad"}, content=bad, headers=api.as_("a"))
    assert r.status_code == 400
    message = r.json()["error"]["message"]
    assert "line 2:" in message and "line 3:" in message and "line 1:" not in message
    content = await api.client.get(f"/api/datasets/{ds['id']}/content", headers=api.as_("a"))
    assert content.content == chat
    assert (await api.client.get(f"/api/datasets/{ds['id']}", headers=api.as_("b"))).status_code == 404
    assert (await api.client.delete(f"/api/datasets/{ds['id']}", headers=api.as_("b"))).status_code == 404
    assert (await api.client.get("/api/datasets", headers=api.as_("b"))).json()["data"] == []
    listed = (await api.client.get("/api/datasets", headers=api.as_("a"))).json()["data"]
    assert [(d["name"], d["lines"]) for d in listed] == [("greetings", 3)]
    assert (await api.client.delete(f"/api/datasets/{ds['id']}", headers=api.as_("a"))).status_code == 200


async def test_ids_no_database_can_hold_are_a_400(api: Api) -> None:
    """The fuzz found it: a 64-bit overflow in a path id crashed the route (500)."""
    too_big = 2**63
    for path in (f"/api/datasets/{too_big}", f"/api/collections/x/documents/{too_big}", "/api/datasets/0"):
        r = await api.client.get(path, headers=api.as_("a"))
        assert r.status_code == 400, (path, r.text)
