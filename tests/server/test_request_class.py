"""Tenant, urgency and deadline reach the scheduler from OpenAI fields and llmos headers."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from llmos.config import load_config
from llmos.kernel import Kernel
from llmos.server import Lifecycle
from polling import until

from .conftest import ServeFactory

pytestmark = pytest.mark.anyio

MSG = [{"role": "user", "content": "hi"}]


async def _tenants(s) -> dict[str, int]:  # type: ignore[no-untyped-def]
    loaded = s.kernel.loaded("fake:1")
    return {t.tenant: t.output_tokens for t in (await loaded.core.stats()).tenants}


async def test_tenant_from_header_then_user_then_anonymous(serve: ServeFactory) -> None:
    s = await serve()
    assert (await s.client.post("/api/tenants", json={"name": "alice"})).status_code == 201
    body = {"model": "fake:1", "messages": MSG, "max_tokens": 3}
    await s.client.post("/v1/chat/completions", json={**body, "user": "alice"})
    await s.client.post(
        "/v1/chat/completions", json={**body, "user": "alice"}, headers={"x-llmos-tenant": "bob"}
    )
    await s.client.post("/v1/chat/completions", json=body)
    # ``user`` names a tenant only when there is one: otherwise it is an end-user's label, and
    # must not invent tenants (in usage rows, the scheduler or /metrics).
    for user in ("carol", "../../evil tenant\n"):
        r = await s.client.post("/v1/chat/completions", json={**body, "user": user})
        assert r.status_code == 200, r.text
    tenants = await _tenants(s)
    assert tenants == {"alice": 3, "bob": 3, "local": 9}
    metrics = (await s.client.get("/metrics")).text
    assert "carol" not in metrics and "evil" not in metrics


async def test_deadline_passing_in_the_queue_is_504(serve: ServeFactory, tmp_path) -> None:  # type: ignore[no-untyped-def]
    s = await serve(config=load_config(home=tmp_path / "h", n_slots=1, n_ctx=2048), step_cost_s=0.01)
    hog = asyncio.create_task(
        s.client.post("/v1/chat/completions", json={"model": "fake:1", "messages": MSG, "max_tokens": 150})
    )
    for _ in range(1000):
        loaded = s.kernel.loaded("fake:1")
        if loaded is not None and loaded.core.running == 1:
            break
        await asyncio.sleep(0.005)
    r = await s.client.post(
        "/v1/chat/completions",
        json={"model": "fake:1", "messages": MSG, "max_tokens": 5},
        headers={"x-llmos-deadline-ms": "100"},
    )
    assert r.status_code == 504 and r.json()["error"]["type"] == "timeout_error"
    assert (await hog).status_code == 200


@pytest.mark.parametrize(
    "headers", [{"x-llmos-priority": "12"}, {"x-llmos-priority": "high"}, {"x-llmos-deadline-ms": "-5"}]
)
async def test_bad_llmos_headers_are_400(serve: ServeFactory, headers: dict[str, str]) -> None:
    s = await serve()
    r = await s.client.post(
        "/v1/chat/completions", json={"model": "fake:1", "messages": MSG}, headers=headers
    )
    assert r.status_code == 400 and r.json()["error"]["param"] in headers


async def test_serve_startup_pulls_and_loads_the_default_model(serve: ServeFactory, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from llmos.cli.serve import default_model_startup

    cfg = load_config(home=tmp_path / "h", default_model="cat:1")
    gate = asyncio.Event()
    inner = default_model_startup(cfg)

    async def startup(kernel: Kernel, life: Lifecycle) -> None:
        await gate.wait()
        await inner(kernel, life)

    s = await serve(config=cfg, models=[], catalog=["cat:1"], startup=startup)
    assert (await s.client.get("/ready")).status_code == 503
    gate.set()

    async def ready() -> bool:
        return (await s.client.get("/ready")).status_code == 200

    await until(ready, what="/ready to say 200", every_s=0.01)
    assert [m["name"] for m in (await s.client.get("/api/ps")).json()["models"]] == ["cat:1"]
    assert [m["name"] for m in (await s.client.get("/api/models")).json()["models"]] == ["cat:1"]


async def test_a_default_model_that_cannot_be_pulled_leaves_the_server_degraded(
    serve: ServeFactory, tmp_path: Path
) -> None:
    from llmos.cli.serve import default_model_startup

    cfg = load_config(home=tmp_path / "h", default_model="ghost:1")
    s = await serve(config=cfg, models=["fake:1"], startup=default_model_startup(cfg))
    for _ in range(500):
        r = await s.client.get("/ready")
        if r.json()["status"] != "starting":
            break
        await asyncio.sleep(0.01)
    assert r.status_code == 503 and r.json()["status"] == "degraded"
    assert "the default model ghost:1 is not available" in r.json()["detail"]
    # Every other model is still served.
    chat = await s.client.post(
        "/v1/chat/completions", json={"model": "fake:1", "messages": MSG, "max_tokens": 2}
    )
    assert chat.status_code == 200
