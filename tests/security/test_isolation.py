"""Two tenants on one server: neither sees the other's keys, usage or audit (404, not 403)."""

from __future__ import annotations

import pytest

from .conftest import TENANT_ADMIN, ServeFactory

pytestmark = pytest.mark.anyio


async def test_two_tenants_see_only_their_own(secured: ServeFactory) -> None:
    s = await secured()
    acme = await s.new_tenant("acme", scopes=TENANT_ADMIN)
    globex = await s.new_tenant("globex", scopes=TENANT_ADMIN)
    assert (await s.chat(acme)).status_code == 200
    assert (await s.chat(globex)).status_code == 200
    assert (await s.chat(globex)).status_code == 200

    acme_keys = (await s.client.get("/api/keys", headers=s.auth(acme))).json()["data"]
    globex_keys = (await s.client.get("/api/keys", headers=s.auth(globex))).json()["data"]
    assert {k["tenant"] for k in acme_keys} == {"acme"} and {k["tenant"] for k in globex_keys} == {"globex"}
    assert all("key" not in k for k in acme_keys)  # the secret is never listed
    theirs = globex_keys[0]["id"]

    for r in (
        await s.client.get(f"/api/keys/{theirs}", headers=s.auth(acme)),
        await s.client.delete(f"/api/keys/{theirs}", headers=s.auth(acme)),
        await s.client.get("/api/keys", params={"tenant": "globex"}, headers=s.auth(acme)),
        await s.client.get("/api/usage", params={"tenant": "globex"}, headers=s.auth(acme)),
        await s.client.get("/api/tenants/globex", headers=s.auth(acme)),
        await s.client.get("/api/keys/key_doesnotexist", headers=s.auth(acme)),
    ):
        assert r.status_code == 404, r.text
    assert (await s.chat(globex)).status_code == 200  # the attempt to revoke did nothing

    usage = (await s.client.get("/api/usage", headers=s.auth(acme))).json()["data"]
    assert usage == [
        {
            "tenant": "acme",
            "requests": 1,
            "prompt_tokens": usage[0]["prompt_tokens"],
            "completion_tokens": usage[0]["completion_tokens"],
            "errors": 0,
        }
    ]
    assert (await s.client.get("/api/tenants/acme", headers=s.auth(acme))).json()["name"] == "acme"
    assert (await s.client.get("/api/audit", headers=s.auth(acme))).status_code == 403
    assert (await s.client.get("/api/tenants", headers=s.auth(acme))).status_code == 403

    every = (await s.client.get("/api/usage", headers=s.auth(s.admin_key))).json()["data"]
    assert {u["tenant"]: u["requests"] for u in every} == {"acme": 1, "globex": 3}
    all_keys = (await s.client.get("/api/keys", headers=s.auth(s.admin_key))).json()["data"]
    assert {k["tenant"] for k in all_keys} == {"acme", "globex", "local"}
