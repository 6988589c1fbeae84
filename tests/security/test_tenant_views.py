"""Two tenants on one server, over HTTP: the scheduler, resource and model views show a key only
its own tenant's requests and the models its patterns allow; every model route checks its scope."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import httpx
import pytest

from .conftest import Served, ServeFactory

pytestmark = pytest.mark.anyio


class Gate:
    """The fake engines' ``sleep``: each engine step waits for a permit until the gate opens, so
    requests stay running (between steps, new requests are tokenized and join the scheduler)."""

    def __init__(self) -> None:
        self._permits = threading.Semaphore(0)
        self._open = threading.Event()

    def __call__(self, _: float) -> None:
        if not self._open.is_set():
            self._permits.acquire(timeout=30)  # a safety net: a failing test must not hang the suite

    def step(self) -> None:
        self._permits.release()

    async def pump(self) -> None:
        """Let one step through every few milliseconds (until cancelled): the engine cores answer
        stats between steps, so a view of the scheduler waits for one."""
        while True:
            self.step()
            await asyncio.sleep(0.005)

    def open(self) -> None:
        self._open.set()
        for _ in range(64):
            self._permits.release()


async def _until_seen(s: Served, gate: Gate, want: dict[str, int]) -> None:
    """Let the engine step, one step at a time, until the schedulers hold ``want`` requests by tenant."""
    for _ in range(2000):
        seen: dict[str, int] = {}
        for resident in s.kernel.ps():
            loaded = s.kernel.loaded(resident.name)
            for t in loaded.core.counts.tenants if loaded is not None else ():
                seen[t.tenant] = seen.get(t.tenant, 0) + t.queued + t.running
        if all(seen.get(t, 0) >= n for t, n in want.items()):
            return
        gate.step()
        await asyncio.sleep(0.005)
    raise AssertionError(f"the requests never all reached the scheduler: {want}")


async def _key(s: Served, tenant: str, **body: Any) -> str:
    r = await s.client.post("/api/keys", json={"tenant": tenant, **body}, headers=s.auth(s.admin_key))
    assert r.status_code == 201, r.text
    return str(r.json()["key"])


async def test_scheduler_shows_a_tenant_only_its_own_requests(secured: ServeFactory) -> None:
    gate = Gate()
    s = await secured(engine_sleep=gate, load_extra={"step_cost_s": 0.001}, scheduler_policy="fair")
    acme = await s.new_tenant("acme")
    globex = await s.new_tenant("globex")
    sent = [
        asyncio.create_task(s.chat(acme, max_tokens=200)),
        asyncio.create_task(s.chat(globex, max_tokens=200)),
        asyncio.create_task(s.chat(globex, max_tokens=200)),
    ]
    pump: asyncio.Task[None] | None = None
    try:
        await _until_seen(s, gate, {"acme": 1, "globex": 2})
        pump = asyncio.create_task(gate.pump())
        get = s.client.get
        for key, own, count in ((acme, "acme", 1), (globex, "globex", 2)):
            reqs = (await get("/api/scheduler/requests", headers=s.auth(key))).json()["models"]
            assert [m["model"] for m in reqs] == ["fake:1"]
            assert [r["tenant"] for r in reqs[0]["requests"]] == [own] * count
            stats = (await get("/api/scheduler", headers=s.auth(key))).json()["models"][0]
            assert [t["tenant"] for t in stats["tenants"]] == [own]
            assert {r["tenant"] for r in stats["requests"]} == {own}
            assert set(stats["policy_state"]) <= {own}
            # Totals over every tenant stay: how busy the model is is not another tenant's secret.
            assert stats["running"] + stats["queued"] == 3
            text = (await get("/api/scheduler", headers=s.auth(key))).text
            other = "globex" if own == "acme" else "acme"
            assert other not in text
        admin = (await get("/api/scheduler", headers=s.auth(s.admin_key))).json()["models"][0]
        assert {t["tenant"] for t in admin["tenants"]} == {"acme", "globex"}
        admin_reqs = (await get("/api/scheduler/requests", headers=s.auth(s.admin_key))).json()
        assert len(admin_reqs["models"][0]["requests"]) == 3
    finally:
        if pump is not None:
            pump.cancel()
        gate.open()
        done = await asyncio.gather(*sent)
    assert [r.status_code for r in done] == [200] * 3


async def test_models_lists_show_only_what_a_key_may_use(secured: ServeFactory) -> None:
    s = await secured()
    await s.new_tenant("acme")
    fake_only = await _key(s, "acme", models=["fake:*"], scopes=["inference", "models:read"])
    assert (await s.chat(fake_only)).status_code == 200
    assert (
        await s.client.post("/api/load", json={"model": "other:1"}, headers=s.auth(s.admin_key))
    ).status_code == 200
    get = s.client.get
    headers = s.auth(fake_only)

    assert [m["id"] for m in (await get("/v1/models", headers=headers)).json()["data"]] == ["fake:1"]
    assert (await get("/v1/models/fake:1", headers=headers)).status_code == 200
    hidden = await get("/v1/models/other:1", headers=headers)
    missing = await get("/v1/models/ghost:1", headers=headers)
    assert hidden.status_code == missing.status_code == 404
    assert hidden.json()["error"]["message"].replace("other:1", "X") == missing.json()["error"][
        "message"
    ].replace("ghost:1", "X")
    assert [m["name"] for m in (await get("/api/models", headers=headers)).json()["models"]] == ["fake:1"]
    assert (await get("/api/models/other:1", headers=headers)).status_code == 404
    assert [m["name"] for m in (await get("/api/ps", headers=headers)).json()["models"]] == ["fake:1"]
    resources = (await get("/api/resources", headers=headers)).json()
    assert [r["model"] for r in resources["residents"]] == ["fake:1"]
    events = (await get("/api/resources/events", headers=headers)).json()["events"]
    assert events and {e["model"] for e in events} == {"fake:1"}
    assert [m["model"] for m in (await get("/api/scheduler", headers=headers)).json()["models"]] == ["fake:1"]
    summary = (await get("/api/metrics/summary", headers=headers)).json()
    assert [m["model"] for m in summary["models"]] == ["fake:1"]
    admin_summary = (await get("/api/metrics/summary", headers=s.auth(s.admin_key))).json()
    assert {m["model"] for m in admin_summary["models"]} == {"fake:1", "other:1"}

    every = [m["id"] for m in (await get("/v1/models", headers=s.auth(s.admin_key))).json()["data"]]
    assert every == ["fake:1", "other:1"]


async def test_did_you_mean_names_only_models_the_key_may_use(secured: ServeFactory) -> None:
    s = await secured()
    await s.new_tenant("acme")
    broad = await _key(s, "acme", models=["*:1", "*:11"], scopes=["inference", "models:read"])
    narrow = await _key(s, "acme", models=["other:1", "*:11"], scopes=["inference", "models:read"])
    body = {"model": "fake:11", "messages": [{"role": "user", "content": "hi"}]}
    typo = await s.client.post("/v1/chat/completions", json=body, headers=s.auth(broad))
    assert typo.status_code == 404
    assert typo.json()["error"]["message"].endswith("; did you mean 'fake:1'?")
    hidden = await s.client.post("/v1/chat/completions", json=body, headers=s.auth(narrow))
    assert hidden.status_code == 404 and "did you mean" not in hidden.json()["error"]["message"]


async def test_every_model_route_checks_its_scope(secured: ServeFactory) -> None:
    s = await secured()
    await s.new_tenant("acme")
    inference = s.auth(await _key(s, "acme", scopes=["inference"]))
    data_only = s.auth(await _key(s, "acme", scopes=["data"]))
    reader = s.auth(await _key(s, "acme", scopes=["models:read"]))
    writer = s.auth(await _key(s, "acme", scopes=["models:write"], models=["fake:*"]))
    c = s.client

    def reads(h: dict[str, str]) -> list[tuple[str, httpx.Request]]:
        return [
            (path, c.build_request("GET", path, headers=h))
            for path in (
                "/api/models",
                "/api/models/fake:1",
                "/api/ps",
                "/api/scheduler",
                "/api/scheduler/requests",
                "/api/resources",
                "/api/resources/events",
            )
        ]

    def writes(h: dict[str, str]) -> list[tuple[str, httpx.Request]]:
        calls: list[tuple[str, str, dict[str, Any] | None]] = [
            ("POST", "/api/pull", {"model": "cat:1", "stream": False}),
            ("POST", "/api/import", {"model": "fake:2", "path": "/nonexistent.gguf", "stream": False}),
            ("POST", "/api/models/copy", {"source": "fake:1", "destination": "fake:copy"}),
            ("POST", "/api/load", {"model": "fake:1"}),
            ("POST", "/api/pin", {"model": "fake:1"}),
            ("POST", "/api/unpin", {"model": "fake:1"}),
            ("POST", "/api/unload", {"model": "fake:1"}),
            ("DELETE", "/api/models/fake:copy", None),
        ]
        return [(f"{m} {p}", c.build_request(m, p, json=b, headers=h)) for m, p, b in calls]

    for h in (inference, data_only):
        for what, req in reads(h) + writes(h):
            r = await c.send(req)
            assert r.status_code == 403, (what, r.text)
    for what, req in writes(reader):
        assert (await c.send(req)).status_code == 403, what
    for what, req in reads(reader):
        assert (await c.send(req)).status_code in (200, 404), what  # allowed (fake:1 is not pulled yet: 404)
    for h in (s.auth(s.admin_key), reader):
        for path in ("/api/tenants", "/api/audit"):
            assert (await c.get(path, headers=h)).status_code == (200 if h is not reader else 403), path

    # models:write on fake:* only: other models are hidden (404) or refused (403) by name.
    assert (await c.post("/api/load", json={"model": "fake:1"}, headers=writer)).status_code == 200
    assert (await c.post("/api/pin", json={"model": "fake:1"}, headers=writer)).status_code == 200
    assert (await c.post("/api/load", json={"model": "other:1"}, headers=writer)).status_code == 404
    assert (await c.delete("/api/models/other:1", headers=writer)).status_code == 404
    copy = {"source": "fake:1", "destination": "other:2"}
    assert (await c.post("/api/models/copy", json=copy, headers=writer)).status_code == 403
    assert (
        await c.post("/api/pull", json={"model": "cat:1", "stream": False}, headers=writer)
    ).status_code == 403
    # /v1/models is for any key that may use models; one with only the data scope may not list them.
    assert (await c.get("/v1/models", headers=inference)).status_code == 200
    assert (await c.get("/v1/models", headers=data_only)).status_code == 403
