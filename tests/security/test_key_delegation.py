"""Keys that make keys: ``keys:write`` is needed, and a key made by a key never exceeds it.

The probe that found the hole: a key with 2 requests/minute, a 50-token daily budget,
``max_tokens_per_request`` 5 and a one-hour expiry made a child with no limits and no expiry,
which kept answering after the parent was spent and after the parent was revoked; and an
``inference``-only key revoked the tenant's other keys.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from .conftest import TENANT_ADMIN, Served, ServeFactory

pytestmark = pytest.mark.anyio

PARENT_LIMITS = {
    "requests_per_minute": 2,
    "token_budget": 50,
    "budget_period": "day",
    "max_tokens_per_request": 5,
}


async def _key(s: Served, as_key: str, **body: Any) -> httpx.Response:
    return await s.client.post("/api/keys", json=body, headers=s.auth(as_key))


async def _parent(s: Served) -> tuple[str, str]:
    """A tenant ``acme``, and a key of it with keys:write and the probe's limits and expiry."""
    await s.new_tenant("acme")
    r = await _key(s, s.admin_key, tenant="acme", scopes=TENANT_ADMIN, limits=PARENT_LIMITS, expires_in=3600)
    assert r.status_code == 201, r.text
    return str(r.json()["key"]), str(r.json()["id"])


async def test_an_inference_only_key_cannot_make_list_or_revoke_keys(secured: ServeFactory) -> None:
    s = await secured()
    key = await s.new_tenant("acme", scopes=["inference"])
    other = (await _key(s, s.admin_key, tenant="acme")).json()["id"]
    for r in (
        await _key(s, key, scopes=["inference"]),
        await s.client.get("/api/keys", headers=s.auth(key)),
        await s.client.get(f"/api/keys/{other}", headers=s.auth(key)),
        await s.client.delete(f"/api/keys/{other}", headers=s.auth(key)),
    ):
        assert r.status_code == 403, r.text
        assert "keys:write" in r.json()["error"]["message"]
    shown = await s.client.get(f"/api/keys/{other}", headers=s.auth(s.admin_key))
    assert shown.json()["revoked_at"] is None


async def test_a_child_inherits_its_parents_limits_and_expiry(secured: ServeFactory) -> None:
    s = await secured()
    parent, parent_id = await _parent(s)
    made = await _key(s, parent, scopes=["inference"])
    assert made.status_code == 201, made.text
    child = made.json()
    assert child["parent"] == parent_id and child["tenant"] == "acme"
    assert {k: child["limits"][k] for k in PARENT_LIMITS} == PARENT_LIMITS
    parent_row = (await s.client.get(f"/api/keys/{parent_id}", headers=s.auth(s.admin_key))).json()
    assert child["expires_at"] == parent_row["expires_at"]
    for body, param in (
        ({"limits": {"requests_per_minute": 1000}}, "limits.requests_per_minute"),
        ({"limits": {"token_budget": 10**6}}, "limits.token_budget"),
        ({"limits": {"max_tokens_per_request": 6}}, "limits.max_tokens_per_request"),
        ({"expires_in": 7200}, "expires_at"),
        ({"scopes": ["inference", "models:write"]}, None),
        ({"scopes": ["inference"], "admin": True}, None),
    ):
        refused = await _key(s, parent, **body)
        assert refused.status_code == 403, (body, refused.text)
        assert refused.json()["error"]["param"] == param
    tighter = await _key(s, parent, scopes=["inference"], limits={"requests_per_minute": 1})
    assert tighter.status_code == 201 and tighter.json()["limits"]["requests_per_minute"] == 1


async def test_a_child_is_bound_by_its_parents_rate_budget_and_cap(secured: ServeFactory) -> None:
    s = await secured()
    parent, _ = await _parent(s)
    child = (await _key(s, parent, scopes=["inference"])).json()["key"]
    over_cap = await s.chat(child, max_tokens=50)
    assert over_cap.status_code == 400 and over_cap.json()["error"]["param"] == "max_tokens"
    # The parent's rate counts the child's requests: one each, then the child is refused.
    assert (await s.chat(parent, max_tokens=5)).status_code == 200
    assert (await s.chat(child, max_tokens=5)).status_code == 200
    limited = await s.chat(child, max_tokens=5)
    assert limited.status_code == 429 and "made this key" in limited.json()["error"]["message"]
    # The next minute, the budget: the child's tokens count against the parent's 50 a day.
    for _ in range(6):
        s.clock.advance(61)
        if (await s.chat(child, max_tokens=5)).status_code != 200:
            break
    s.clock.advance(61)
    spent = await s.chat(child, max_tokens=5)
    assert spent.status_code == 429 and spent.json()["error"]["code"] == "insufficient_quota"
    assert (await s.chat(parent, max_tokens=5)).json()["error"]["code"] == "insufficient_quota"


async def test_revoking_or_expiring_a_parent_ends_its_children(secured: ServeFactory) -> None:
    s = await secured()
    parent, parent_id = await _parent(s)
    child = (await _key(s, parent, scopes=["inference", "keys:write"])).json()
    grandchild = (await _key(s, child["key"], scopes=["inference"])).json()
    assert grandchild["parent"] == child["id"]
    # A key manages itself and the keys made from it, not its parent or siblings.
    listed = (await s.client.get("/api/keys", headers=s.auth(child["key"]))).json()["data"]
    assert {k["id"] for k in listed} == {child["id"], grandchild["id"]}
    for r in (
        await s.client.get(f"/api/keys/{parent_id}", headers=s.auth(child["key"])),
        await s.client.delete(f"/api/keys/{parent_id}", headers=s.auth(child["key"])),
    ):
        assert r.status_code == 404
    assert (await s.chat(grandchild["key"], max_tokens=2)).status_code == 200

    revoked = await s.client.delete(f"/api/keys/{child['id']}", headers=s.auth(parent))
    assert revoked.status_code == 200 and revoked.json()["revoked_at"] is not None
    after = await s.chat(grandchild["key"], max_tokens=2)
    assert after.status_code == 401 and "revoked" in after.json()["error"]["message"]
    rows = (await s.client.get("/api/keys", params={"tenant": "acme"}, headers=s.auth(s.admin_key))).json()
    states = {k["id"]: k["revoked_at"] is not None for k in rows["data"]}
    assert states[child["id"]] and states[grandchild["id"]] and not states[parent_id]
    audit = (await s.client.get("/api/audit", headers=s.auth(s.admin_key))).json()["data"][0]
    assert audit["action"] == "key.revoke" and audit["detail"]["with"] == [grandchild["id"]]

    sibling = (await _key(s, parent, scopes=["inference"])).json()["key"]
    assert (await s.chat(sibling, max_tokens=2)).status_code == 200
    s.clock.advance(3601)  # the parent's hour is over: so is every key it made
    expired = await s.chat(sibling, max_tokens=2)
    assert expired.status_code == 401 and "expired" in expired.json()["error"]["message"]


async def test_revoking_a_parent_revokes_a_child_made_without_an_expiry_of_its_own(
    secured: ServeFactory,
) -> None:
    s = await secured()
    await s.new_tenant("acme")
    parent = (await _key(s, s.admin_key, tenant="acme", scopes=TENANT_ADMIN)).json()
    child = (await _key(s, parent["key"], scopes=["inference"])).json()
    assert child["expires_at"] is None and child["limits"]["requests_per_minute"] is None
    r = await s.client.delete(f"/api/keys/{parent['id']}", headers=s.auth(s.admin_key))
    assert r.status_code == 200
    assert (await s.chat(child["key"], max_tokens=2)).status_code == 401


async def test_model_patterns_narrow_only(secured: ServeFactory) -> None:
    s = await secured()
    await s.new_tenant("acme")
    parent = (await _key(s, s.admin_key, tenant="acme", scopes=TENANT_ADMIN, models=["fake:*"])).json()["key"]
    for models in (["*"], ["other:1"], ["fake:*", "o*"], ["f*"]):
        assert (await _key(s, parent, models=models)).status_code == 403, models
    for models in (["fake:*"], ["fake:1"]):
        assert (await _key(s, parent, scopes=["inference"], models=models)).status_code == 201, models
