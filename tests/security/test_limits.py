"""Every limit, per tenant and per key, and the token budget, on an injected clock."""

from __future__ import annotations

from typing import Any

import pytest

from llmos.security.principal import Principal

from .conftest import TENANT_ADMIN, Served, ServeFactory

pytestmark = pytest.mark.anyio


async def _limit_tenant(s: Served, name: str, **limits: Any) -> str:
    return await s.new_tenant(name, limits=limits)


async def test_requests_per_minute_per_tenant(secured: ServeFactory) -> None:
    s = await secured()
    key = await _limit_tenant(s, "acme", requests_per_minute=2)
    assert (await s.chat(key)).status_code == 200
    s.clock.advance(10)
    assert (await s.chat(key)).status_code == 200
    over = await s.chat(key)
    assert over.status_code == 429 and over.json()["error"]["code"] == "rate_limit_exceeded"
    assert over.headers["retry-after"] == "50" and "x-should-retry" not in over.headers
    s.clock.advance(50)
    assert (await s.chat(key)).status_code == 200
    # Another tenant is not held back by acme's limit.
    assert (await s.chat(s.admin_key)).status_code == 200


async def test_requests_per_minute_per_key(secured: ServeFactory) -> None:
    s = await secured()
    await s.new_tenant("acme")
    r = await s.client.post(
        "/api/keys",
        json={"tenant": "acme", "limits": {"requests_per_minute": 1}},
        headers=s.auth(s.admin_key),
    )
    limited = r.json()["key"]
    assert r.json()["limits"]["requests_per_minute"] == 1
    assert (await s.chat(limited)).status_code == 200
    assert (await s.chat(limited)).status_code == 429
    assert (await s.chat(s.keys["acme"])).status_code == 200  # the tenant's other key is free


async def test_tokens_per_minute(secured: ServeFactory) -> None:
    s = await secured()
    key = await _limit_tenant(s, "acme", tokens_per_minute=5)
    first = await s.chat(key, max_tokens=4)
    assert first.status_code == 200 and first.json()["usage"]["total_tokens"] >= 5
    s.clock.advance(30)
    over = await s.chat(key)
    assert over.status_code == 429 and "tokens per minute" in over.json()["error"]["message"]
    assert over.headers["retry-after"] == "30"
    s.clock.advance(30)
    assert (await s.chat(key)).status_code == 200


async def test_concurrent_requests(secured: ServeFactory) -> None:
    s = await secured()
    key = await _limit_tenant(s, "acme", concurrent_requests=1)
    held = s.security.admit(Principal(tenant="acme"))  # one request of acme's is running
    over = await s.chat(key)
    assert over.status_code == 429 and "concurrent" in over.json()["error"]["message"]
    held.finish(0)
    assert (await s.chat(key)).status_code == 200
    # The slot is given back when the response ends, failed ones included.
    assert (await s.chat(key, model="missing:1")).status_code == 404
    assert (await s.chat(key)).status_code == 200


async def test_max_tokens_per_request(secured: ServeFactory) -> None:
    s = await secured()
    key = await _limit_tenant(s, "acme", max_tokens_per_request=3)
    over = await s.chat(key, max_tokens=4)
    assert over.status_code == 400 and over.json()["error"]["param"] == "max_tokens"
    capped = await s.chat(key, max_tokens=None)
    assert capped.status_code == 200 and capped.json()["usage"]["completion_tokens"] <= 3
    text = await s.client.post(
        "/v1/completions", json={"model": "fake:1", "prompt": "hi", "max_tokens": 9}, headers=s.auth(key)
    )
    assert text.status_code == 400


async def test_token_budget_per_period(secured: ServeFactory) -> None:
    s = await secured()
    key = await _limit_tenant(s, "acme", token_budget=10, budget_period="day")
    used = 0
    while used < 10:
        r = await s.chat(key, max_tokens=4)
        assert r.status_code == 200
        used += r.json()["usage"]["total_tokens"]
    spent = await s.chat(key)
    assert spent.status_code == 429
    assert spent.headers["x-should-retry"] == "false"
    assert spent.json()["error"]["code"] == "insufficient_quota"
    assert spent.headers["retry-after"] == str(
        12 * 3600
    )  # the clock reads 12:00 UTC; the day renews at 00:00
    s.clock.advance(12 * 3600)
    assert (await s.chat(key)).status_code == 200


async def test_key_budget_and_changed_limits_apply_at_once(secured: ServeFactory) -> None:
    s = await secured()
    key = await s.new_tenant("acme")
    r = await s.client.post(
        "/api/keys", json={"tenant": "acme", "limits": {"token_budget": 1}}, headers=s.auth(s.admin_key)
    )
    small = r.json()["key"]
    assert (await s.chat(small)).status_code == 200
    assert (await s.chat(small)).headers.get("x-should-retry") == "false"
    assert (await s.chat(key)).status_code == 200
    patch = await s.client.patch(
        "/api/tenants/acme", json={"limits": {"requests_per_minute": 1}}, headers=s.auth(s.admin_key)
    )
    assert patch.status_code == 200 and patch.json()["limits"]["requests_per_minute"] == 1
    assert (await s.chat(key)).status_code == 429
    cleared = await s.client.patch(
        "/api/tenants/acme", json={"limits": {"requests_per_minute": None}}, headers=s.auth(s.admin_key)
    )
    assert cleared.json()["limits"]["requests_per_minute"] is None
    assert (await s.chat(key)).status_code == 200


@pytest.mark.parametrize("settings", [{"scheduler_policy": "fair"}, {}], ids=["fair", "default"])
async def test_plan_and_weight_reach_the_fair_share_scheduler(
    secured: ServeFactory, settings: dict[str, str]
) -> None:
    s = await secured(**settings)
    key = await s.new_tenant("acme", plan="pro")
    assert (await s.chat(key)).status_code == 200
    loaded = s.kernel.loaded("fake:1")
    assert loaded is not None

    async def weight() -> float:  # as the model's engine core holds it (messages arrive in order)
        return (await loaded.core.stats()).tenant_weights["acme"]

    assert await weight() == 2.0
    r = await s.client.patch("/api/tenants/acme", json={"weight": 5}, headers=s.auth(s.admin_key))
    assert r.json()["weight"] == 5
    assert await weight() == 5.0
    r = await s.client.patch("/api/tenants/acme", json={"plan": "free"}, headers=s.auth(s.admin_key))
    assert r.json()["weight"] == 0.5 and await weight() == 0.5
    bad = await s.client.patch("/api/tenants/acme", json={"plan": "gold"}, headers=s.auth(s.admin_key))
    assert bad.status_code == 400


async def test_key_limits_change_at_once_and_only_by_an_admin(secured: ServeFactory) -> None:
    s = await secured()
    key = await s.new_tenant("acme", scopes=TENANT_ADMIN)
    key_id = s.key_ids["acme"]
    lift = await s.client.patch(
        f"/api/keys/{key_id}", json={"limits": {"token_budget": 10**9}}, headers=s.auth(key)
    )
    assert lift.status_code == 403
    r = await s.client.patch(
        f"/api/keys/{key_id}",
        json={"name": "ci", "limits": {"requests_per_minute": 1}},
        headers=s.auth(s.admin_key),
    )
    assert (
        r.status_code == 200 and r.json()["name"] == "ci" and r.json()["limits"]["requests_per_minute"] == 1
    )
    assert (await s.chat(key)).status_code == 200
    assert (await s.chat(key)).status_code == 429
    r = await s.client.patch(
        f"/api/keys/{key_id}", json={"limits": {"requests_per_minute": None}}, headers=s.auth(s.admin_key)
    )
    assert r.json()["limits"]["requests_per_minute"] is None and r.json()["name"] == "ci"
    assert (await s.chat(key)).status_code == 200
    actions = [
        e["action"] for e in (await s.client.get("/api/audit", headers=s.auth(s.admin_key))).json()["data"]
    ]
    assert actions[:2] == ["key.limits", "key.limits"]
