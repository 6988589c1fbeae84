"""The SDK's ``client.security`` over the API, and the CLI: through a server, and its one local
path (the first admin key) without one."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from starlette.testclient import TestClient
from typer.testing import CliRunner

from kernel.fakes import MemoryRegistry, inventory, manifest
from llmos.cli import security as cli_security
from llmos.cli.app import app as cli
from llmos.config import load_config
from llmos.engine.base import Engine
from llmos.engine.fake import FakeEngine
from llmos.kernel import build_kernel
from llmos.sdk import AsyncClient, AuthenticationError, Client
from llmos.server import create_app

from .conftest import ServeFactory

runner = CliRunner()


def llmos(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(cli, list(args))
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.stdout, result.stderr


@pytest.mark.anyio
async def test_async_sdk_security(secured: ServeFactory) -> None:
    s = await secured()
    transport = httpx.ASGITransport(app=s.app)
    async with AsyncClient(base_url="http://test", api_key=s.admin_key, transport=transport) as admin:
        assert (await admin.security.whoami()).is_admin
        t = await admin.security.tenants.create("acme", plan="pro", limits={"requests_per_minute": 5})
        assert (t.weight, t.limits["requests_per_minute"], t.max_urgency) == (2.0, 5, 7)
        t = await admin.security.tenants.update("acme", max_urgency=6)
        assert t.max_urgency == 6
        t = await admin.security.tenants.update(
            "acme", limits={"requests_per_minute": None, "token_budget": 99}
        )
        assert t.limits["requests_per_minute"] is None and t.limits["token_budget"] == 99
        assert [x.name for x in await admin.security.tenants.list()] == ["acme", "local"]
        made = await admin.security.keys.create(
            tenant="acme", scopes=["inference", "keys:write"], expires_in=3600
        )
        assert made.key and made.key.startswith(made.prefix) and made.expires_at
        assert made.key not in repr(made) and made.parent is None
    async with AsyncClient(base_url="http://test", api_key=made.key, transport=transport) as acme:
        me = await acme.security.whoami()
        assert (me.tenant, me.scopes) == ("acme", ("inference", "keys:write"))
        child = await acme.security.keys.create(scopes=["inference"])
        assert child.parent == made.id and child.expires_at == made.expires_at
        assert {k.id for k in await acme.security.keys.list()} == {made.id, child.id}
        assert await acme.security.usage() == []
    async with AsyncClient(base_url="http://test", api_key=s.admin_key, transport=transport) as admin:
        revoked = await admin.security.keys.revoke(made.id)
        assert revoked.revoked_at is not None
        assert [e.action for e in await admin.security.audit(limit=2)] == ["key.revoke", "key.create"]
        assert (await admin.security.keys.get(child.id)).revoked_at is not None  # went with its parent
    async with AsyncClient(base_url="http://test", api_key=made.key, transport=transport) as acme:
        with pytest.raises(AuthenticationError):
            await acme.security.whoami()


def test_cli_without_a_server_makes_only_the_first_admin_key(llmos_home: Path) -> None:
    code, key, err = llmos("keys", "create", "--admin")
    assert code == 0, err
    assert key.strip().startswith("sk-llmos-") and "not shown again" in err and "local database" in err
    for args in (["tenants", "create", "acme"], ["keys", "list"], ["keys", "create"], ["usage"]):
        code, out, err = llmos(*args)
        assert code == 6 and out == "", args
        assert (
            err.startswith("error: no llmos server is running at") and "start one with 'llmos serve'" in err
        )
    code, _, err = llmos("keys", "create", "--local")
    assert code == 2 and "--admin" in err
    code, _, err = llmos("keys", "create", "--expires", "yesterday")
    assert code == 2


class ViaTestClient(httpx.BaseTransport):
    """A sync SDK client's transport into a running TestClient app (lifespan and all)."""

    def __init__(self, tc: TestClient) -> None:
        self.tc = tc

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        r = self.tc.request(
            request.method, str(request.url), headers=dict(request.headers), content=request.read()
        )
        return httpx.Response(r.status_code, headers=r.headers, content=r.content)


@pytest.fixture
def server(llmos_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[TestClient]:
    """A key-requiring server on this LLMOS_HOME's database; the CLI reaches it through the SDK."""
    cfg = load_config(auth="required")

    def engine_factory(backend: str) -> Engine:
        return FakeEngine()

    kernel = build_kernel(
        cfg,
        registry=MemoryRegistry(tmp_path, [manifest("fake:1")]),
        engine_factory=engine_factory,
        inventory=inventory(),
    )
    with TestClient(create_app(kernel, drain_timeout=0.5), base_url="http://test") as tc:

        def reachable() -> Client:
            return Client(base_url="http://test", transport=ViaTestClient(tc))

        monkeypatch.setattr(cli_security, "open_client", reachable)
        yield tc


def test_cli_through_a_server(server: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    # No key yet: the server refuses, and the first admin key is made on the local database.
    code, admin_key, err = llmos("keys", "create", "--admin")
    assert code == 0 and "local database" in err
    admin_key = admin_key.strip()
    assert server.get("/api/whoami", headers={"authorization": f"Bearer {admin_key}"}).json()["is_admin"]
    code, _, err = llmos("tenants", "list")
    assert code == 8 and "missing API key" in err

    def with_key() -> Client:
        return Client(base_url="http://test", api_key=admin_key, transport=ViaTestClient(server))

    monkeypatch.setattr(cli_security, "open_client", with_key)
    assert llmos("tenants", "create", "acme", "--plan", "pro", "--rpm", "5")[0] == 0
    code, out, _ = llmos("tenants", "list", "--json")
    tenants = {t["name"]: t for t in json.loads(out)}
    assert tenants["acme"]["weight"] == 2.0 and tenants["acme"]["limits"]["requests_per_minute"] == 5
    code, out, err = llmos(
        "tenants", "set-limits", "acme", "--clear", "rpm", "--budget", "1000", "--budget-period", "day"
    )
    assert code == 0 and "budget=1000/day" in out, err
    code, _, err = llmos("tenants", "set-limits", "acme")
    assert code == 2 and "nothing to change" in err
    code, _, err = llmos("keys", "create", "--tenant", "nowhere")
    assert code == 3 and "llmos tenants create nowhere" in err
    code, secret, _ = llmos(
        "keys",
        "create",
        "--tenant",
        "acme",
        "--scopes",
        "inference,embeddings",
        "--models",
        "fake:*",
        "--expires",
        "30d",
    )
    assert code == 0
    listed = json.loads(llmos("keys", "list", "--json", "--tenant", "acme")[1])
    assert (
        len(listed) == 1 and listed[0]["scopes"] == ["inference", "embeddings"] and listed[0]["key"] is None
    )
    assert secret.strip() not in llmos("keys", "list")[1]
    code, out, err = llmos("keys", "set-limits", listed[0]["id"], "--rpm", "7", "--budget", "500")
    assert code == 0 and "rpm=7" in out and "budget=500/month" in out, err
    r = server.post(
        "/v1/chat/completions",
        json={"model": "fake:1", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2},
        headers={"authorization": f"Bearer {secret.strip()}"},
    )
    assert r.status_code == 200
    code, out, _ = llmos("usage", "--by", "tenant,model", "--json")
    assert json.loads(out) == [
        {
            "requests": 1,
            "prompt_tokens": r.json()["usage"]["prompt_tokens"],
            "completion_tokens": 2,
            "errors": 0,
            "tenant": "acme",
            "model": "fake:1",
            "day": None,
            "key": None,
        }
    ]
    key_id = json.loads(llmos("keys", "list", "--json", "--tenant", "acme")[1])[0]["id"]
    assert llmos("keys", "revoke", key_id)[0] == 0
    assert server.get("/api/whoami", headers={"authorization": f"Bearer {secret.strip()}"}).status_code == 401
