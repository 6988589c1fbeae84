"""Keys over HTTP: required where auth is on, revocation and expiry at once, scopes, whoami."""

from __future__ import annotations

import pytest

from .conftest import TENANT_ADMIN, ServeFactory

pytestmark = pytest.mark.anyio


async def test_required_auth_refuses_missing_and_bad_keys_but_not_health(secured: ServeFactory) -> None:
    s = await secured(auth="required")
    for r in (
        await s.chat(None),
        await s.client.get("/api/models"),
        await s.client.get("/api/keys"),
        await s.chat("sk-llmos-notakeyatallnotakeyatall"),
        await s.chat("some-other-token"),
    ):
        assert r.status_code == 401, r.text
        assert r.json()["error"]["type"] == "authentication_error"
    assert (await s.client.get("/health")).status_code == 200
    assert (await s.client.get("/ready")).status_code == 200
    ok = await s.chat(s.admin_key)
    assert ok.status_code == 200, ok.text


async def test_auto_requires_keys_beyond_loopback_only(secured: ServeFactory) -> None:
    exposed = await secured(auth="auto", host="0.0.0.0")
    assert (await exposed.chat(None)).status_code == 401
    local = await secured(auth="auto", host="127.0.0.1")
    assert (await local.chat(None)).status_code == 200
    me = (await local.client.get("/api/whoami")).json()
    assert me == {
        "tenant": "local",
        "key_prefix": None,
        "scopes": sorted(me["scopes"]),
        "is_admin": True,
        "auth": "off",
        "models": ["*"],
    }
    # With auth off a real llmos key is still honoured (and a bad one refused); foreign tokens
    # (OpenAI clients insist on sending one) are ignored.
    assert (await local.chat("sk-whatever")).status_code == 200
    assert (await local.chat("sk-llmos-badbadbadbadbadbad")).status_code == 401


async def test_anonymous_tenant_is_configurable(secured: ServeFactory) -> None:
    s = await secured(auth="off", anonymous_tenant="home")
    assert (await s.client.get("/api/whoami")).json()["tenant"] == "home"


async def test_whoami_of_a_key(secured: ServeFactory) -> None:
    s = await secured()
    key = await s.new_tenant("acme")
    me = (await s.client.get("/api/whoami", headers=s.auth(key))).json()
    assert me["tenant"] == "acme" and me["auth"] == "on" and me["is_admin"] is False
    assert me["key_prefix"] == key[:17] and "admin" not in me["scopes"]


async def test_env_admin_key(secured: ServeFactory) -> None:
    s = await secured(admin_key="sk-llmos-fromtheenvironment0123456789")
    r = await s.client.get("/api/tenants", headers=s.auth("sk-llmos-fromtheenvironment0123456789"))
    assert r.status_code == 200
    r = await s.client.get("/api/tenants", headers=s.auth("sk-llmos-fromtheenvironment0123456780"))
    assert r.status_code == 401


async def test_revocation_takes_effect_on_the_next_request(secured: ServeFactory) -> None:
    s = await secured()
    key = await s.new_tenant("acme")
    assert (await s.chat(key)).status_code == 200
    r = await s.client.delete(f"/api/keys/{s.key_ids['acme']}", headers=s.auth(s.admin_key))
    assert r.status_code == 200 and r.json()["revoked_at"] is not None
    refused = await s.chat(key)
    assert refused.status_code == 401 and "revoked" in refused.json()["error"]["message"]


async def test_expiry_takes_effect_when_the_clock_passes_it(secured: ServeFactory) -> None:
    s = await secured()
    await s.new_tenant("acme")
    r = await s.client.post(
        "/api/keys", json={"tenant": "acme", "expires_in": 60}, headers=s.auth(s.admin_key)
    )
    key = r.json()["key"]
    assert (await s.chat(key)).status_code == 200
    s.clock.advance(61)
    refused = await s.chat(key)
    assert refused.status_code == 401 and "expired" in refused.json()["error"]["message"]


async def test_scopes_and_model_patterns(secured: ServeFactory) -> None:
    s = await secured()
    await s.new_tenant("acme")
    r = await s.client.post(
        "/api/keys",
        json={"tenant": "acme", "scopes": ["inference"], "models": ["fake:*"]},
        headers=s.auth(s.admin_key),
    )
    key = r.json()["key"]
    assert (await s.chat(key, model="fake:1")).status_code == 200
    other = await s.chat(key, model="other:1")
    assert other.status_code == 403 and other.json()["error"]["type"] == "permission_error"
    assert (await s.client.get("/api/models", headers=s.auth(key))).status_code == 403
    assert (await s.client.post("/api/pull", json={"model": "cat:1"}, headers=s.auth(key))).status_code == 403
    assert (await s.client.delete("/api/models/fake:1", headers=s.auth(key))).status_code == 403
    # A default tenant key reads models but cannot change them.
    plain = await s.new_tenant("globex")
    assert (await s.client.get("/api/models", headers=s.auth(plain))).status_code == 200
    assert (
        await s.client.post("/api/unload", json={"model": "fake:1"}, headers=s.auth(plain))
    ).status_code == 403


async def test_a_key_cannot_grant_more_than_it_has(secured: ServeFactory) -> None:
    s = await secured()
    key = await s.new_tenant("acme", scopes=TENANT_ADMIN)
    mine = await s.client.post("/api/keys", json={"scopes": ["inference"]}, headers=s.auth(key))
    assert mine.status_code == 201 and mine.json()["tenant"] == "acme"
    assert (await s.client.post("/api/keys", json={"admin": True}, headers=s.auth(key))).status_code == 403
    other = await s.client.post("/api/keys", json={"tenant": "local"}, headers=s.auth(key))
    assert other.status_code == 404
    assert (await s.client.post("/api/tenants", json={"name": "x"}, headers=s.auth(key))).status_code == 403


async def test_tenant_header_only_for_anonymous_and_admins(secured: ServeFactory) -> None:
    s = await secured(scheduler_policy="fair")
    key = await s.new_tenant("acme")
    await s.client.post("/api/tenants", json={"name": "globex"}, headers=s.auth(s.admin_key))
    await s.chat(key)
    r = await s.client.post(
        "/v1/chat/completions",
        json={
            "model": "fake:1",
            "messages": [{"role": "user", "content": "hi"}],
            "max_tokens": 2,
            "user": "globex",
        },
        headers={**s.auth(key), "x-llmos-tenant": "globex"},
    )
    assert r.status_code == 200
    r = await s.client.post(
        "/v1/chat/completions",
        json={"model": "fake:1", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2},
        headers={**s.auth(s.admin_key), "x-llmos-tenant": "globex"},
    )
    assert r.status_code == 200
    rows = {u.tenant: u.requests for u in s.security.store.summarize(["tenant"])}
    assert rows == {"acme": 2, "globex": 1}
