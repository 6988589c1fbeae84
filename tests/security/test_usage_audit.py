"""Every request leaves a usage row (failed and rejected ones too); admin actions leave audit events."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from .conftest import ServeFactory

pytestmark = pytest.mark.anyio


async def test_a_usage_row_per_request_with_its_status(secured: ServeFactory) -> None:
    s = await secured()
    key = await s.new_tenant("acme", limits={"requests_per_minute": 3})
    ok = await s.chat(key, headers={"x-request-id": "req-ok"})
    assert ok.status_code == 200
    ok_stream = await s.client.post(
        "/v1/chat/completions",
        json={
            "model": "fake:1",
            "messages": [{"role": "user", "content": "hi"}],
            "max_tokens": 3,
            "stream": True,
        },
        headers={**s.auth(key), "x-request-id": "req-stream"},
    )
    assert ok_stream.status_code == 200 and "[DONE]" in ok_stream.text
    assert (await s.chat(key, model="missing:1")).status_code == 404
    assert (await s.chat(key)).status_code == 429
    assert (
        await s.client.post(
            "/v1/chat/completions", json={"model": "fake:1", "messages": []}, headers=s.auth(key)
        )
    ).status_code == 400
    assert (await s.chat(None)).status_code == 401  # no tenant: no row

    rows = [u for _, u in s.security.store.list_usage(limit=100)]
    assert [r.status for r in reversed(rows)] == [200, 200, 404, 429, 400]
    assert {r.tenant for r in rows} == {"acme"} and {r.key_prefix for r in rows} == {key[:17]}
    by_id = {r.request_id: r for r in rows}
    first = by_id["req-ok"]
    assert first.model == "fake:1" and first.digest == hashlib.sha256(b"fake:1").hexdigest()
    assert first.prompt_tokens > 0 and first.completion_tokens == 4 and first.operation == "chat"
    assert by_id["req-stream"].completion_tokens == 3 and by_id["req-stream"].prompt_tokens > 0
    assert all(r.latency_ms >= 0 for r in rows)

    by = await s.client.get(
        "/api/usage", params={"group_by": "tenant,model,day"}, headers=s.auth(s.admin_key)
    )
    data = by.json()["data"]
    assert {(d["tenant"], d["model"], d["day"]) for d in data} == {
        ("acme", "fake:1", "2026-11-25"),
        ("acme", "missing:1", "2026-11-25"),
        ("acme", "", "2026-11-25"),  # the body failed validation before naming a model
    }
    fake = next(d for d in data if d["model"] == "fake:1")
    assert fake["requests"] == 3 and fake["errors"] == 1
    assert (
        await s.client.get("/api/usage", params={"group_by": "color"}, headers=s.auth(key))
    ).status_code == 400
    day = await s.client.get("/api/usage", params={"since": "2026-11-26"}, headers=s.auth(key))
    assert day.json()["data"] == []


async def test_completions_are_metered_too(secured: ServeFactory) -> None:
    s = await secured()
    r = await s.client.post(
        "/v1/completions",
        json={"model": "fake:1", "prompt": ["a", "b"], "max_tokens": 2},
        headers=s.auth(s.admin_key),
    )
    assert r.status_code == 200
    (row,) = [u for _, u in s.security.store.list_usage()]
    assert row.operation == "completion" and row.completion_tokens == 4 and row.tenant == "local"


async def test_admin_actions_are_audited(secured: ServeFactory, tmp_path: Path) -> None:
    s = await secured()
    admin = s.auth(s.admin_key)
    await s.new_tenant("acme")
    assert (
        await s.client.patch("/api/tenants/acme", json={"limits": {"token_budget": 100}}, headers=admin)
    ).status_code == 200
    key_id = (await s.client.get("/api/keys", params={"tenant": "acme"}, headers=admin)).json()["data"][0][
        "id"
    ]
    assert (await s.client.delete(f"/api/keys/{key_id}", headers=admin)).status_code == 200
    assert (
        await s.client.post("/api/pull", json={"model": "cat:1", "stream": False}, headers=admin)
    ).status_code == 200
    assert (
        await s.client.post(
            "/api/models/copy", json={"source": "cat:1", "destination": "dog:1"}, headers=admin
        )
    ).status_code == 200
    f = tmp_path / "m.gguf"
    f.write_bytes(b"x" * 64)
    r = await s.client.post(
        "/api/import", json={"path": str(f), "model": "mine:1", "stream": False}, headers=admin
    )
    assert r.status_code == 200
    assert (await s.client.delete("/api/models/dog:1", headers=admin)).status_code == 200

    events = (await s.client.get("/api/audit", headers=admin)).json()["data"]
    actions = [e["action"] for e in reversed(events)]
    assert actions == [
        "key.create",  # the bootstrap admin key
        "tenant.create",
        "key.create",
        "tenant.limits",
        "key.revoke",
        "model.pull",
        "model.copy",
        "model.import",
        "model.delete",
    ]
    prefix = s.admin_key[:17]
    assert {e["actor"] for e in events} == {"local-cli", prefix}
    assert all(e["time"].startswith("2026-11-25T12:00") for e in events)
    limits = next(e for e in events if e["action"] == "tenant.limits")
    assert limits["target"] == "acme" and limits["detail"] == {"limits": {"token_budget": 100}}
    only = await s.client.get("/api/audit", params={"action": "model.delete", "limit": 5}, headers=admin)
    assert [e["target"] for e in only.json()["data"]] == ["dog:1"]
