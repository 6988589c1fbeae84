"""A tenant's plan (or its own ``max_urgency``) caps the urgency its requests run at.

The probe: ``X-LLMOS-Priority: 9`` (or ``service_tier: "priority"``, or ``priority``) from a
free-plan key preempted an enterprise tenant's running request. Now a request above its
tenant's ceiling is lowered to it (not refused) and ``X-LLMOS-Priority-Lowered`` says so.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from llmos.kernel.types import RequestMeta

from .conftest import Served, ServeFactory

pytestmark = pytest.mark.anyio


def _spy(s: Served) -> list[RequestMeta]:
    """Record the RequestMeta of every generation, embedding and task the kernel is asked for."""
    seen: list[RequestMeta] = []
    metas: dict[str, Callable[[tuple[Any, ...]], RequestMeta]] = {
        "submit": lambda args: args[0].meta,
        "embed": lambda args: args[2],
        "run_task": lambda args: args[2],
    }
    for name, meta_of in metas.items():
        real = getattr(s.kernel, name)

        async def spy(*args: Any, _real: Any = real, _meta: Any = meta_of, **kw: Any) -> Any:
            seen.append(_meta(args))
            return await _real(*args, **kw)

        setattr(s.kernel, name, spy)
    return seen


async def test_a_free_plan_cannot_claim_the_top_priority(secured: ServeFactory) -> None:
    s = await secured()
    free = await s.new_tenant("hobby", plan="free")
    enterprise = await s.new_tenant("bigco", plan="enterprise")
    seen = _spy(s)
    asks: list[tuple[dict[str, str], dict[str, Any]]] = [
        ({"x-llmos-priority": "9"}, {}),
        ({}, {"service_tier": "priority"}),
        ({}, {"priority": 9}),
    ]
    for headers, body in asks:
        r = await s.chat(free, headers=headers, **body)
        assert r.status_code == 200, r.text
        assert r.headers["x-llmos-priority-lowered"] == "5"
        assert seen[-1].urgency == 5 and seen[-1].tenant == "hobby"
    r = await s.chat(enterprise, headers={"x-llmos-priority": "9"})
    assert r.headers["x-llmos-priority-lowered"] == "8" and seen[-1].urgency == 8
    r = await s.chat(enterprise, service_tier="priority")
    assert "x-llmos-priority-lowered" not in r.headers and seen[-1].urgency == 8
    r = await s.chat(free, headers={"x-llmos-priority": "2"})  # asking for less is always fine
    assert "x-llmos-priority-lowered" not in r.headers and seen[-1].urgency == 2
    r = await s.chat(s.admin_key, headers={"x-llmos-priority": "9"})  # admins are not capped
    assert "x-llmos-priority-lowered" not in r.headers and seen[-1].urgency == 9


async def test_streams_completions_embeddings_and_tasks_are_capped_too(secured: ServeFactory) -> None:
    s = await secured()
    free = await s.new_tenant("hobby", plan="free", max_urgency=3)
    seen = _spy(s)
    stream = await s.chat(free, stream=True, priority=9)
    assert stream.headers["x-llmos-priority-lowered"] == "3" and seen[-1].urgency == 3
    r = await s.client.post(
        "/v1/completions",
        json={"model": "fake:1", "prompt": "hi", "max_tokens": 2, "priority": 9},
        headers=s.auth(free),
    )
    assert r.headers["x-llmos-priority-lowered"] == "3" and seen[-1].urgency == 3
    r = await s.client.post("/v1/embeddings", json={"model": "fake:1", "input": "hi"}, headers=s.auth(free))
    assert r.status_code == 200 and r.headers["x-llmos-priority-lowered"] == "3"
    assert seen[-1].urgency == 3
    r = await s.client.post(
        "/api/tasks/summarize",
        json={"model": "fake:1", "text": "A long text to make short.", "priority": 9, "max_tokens": 8},
        headers=s.auth(free),
    )
    # The fake engine writes lorem, not the task's JSON: the task fails, but it ran capped.
    assert seen[-1].urgency == 3 and seen[-1].tenant == "hobby"


async def test_the_ceiling_follows_the_plan_and_an_explicit_setting(secured: ServeFactory) -> None:
    s = await secured()
    admin = s.auth(s.admin_key)
    key = await s.new_tenant("acme", plan="free")
    seen = _spy(s)
    assert (await s.client.get("/api/tenants/acme", headers=admin)).json()["max_urgency"] == 5
    r = await s.client.patch("/api/tenants/acme", json={"max_urgency": 9}, headers=admin)
    assert r.status_code == 200 and r.json()["max_urgency"] == 9
    r = await s.chat(key, headers={"x-llmos-priority": "9"})
    assert "x-llmos-priority-lowered" not in r.headers and seen[-1].urgency == 9
    r = await s.client.patch("/api/tenants/acme", json={"max_urgency": None, "plan": "pro"}, headers=admin)
    assert r.json()["max_urgency"] == 7
    r = await s.chat(key, headers={"x-llmos-priority": "9"})
    assert r.headers["x-llmos-priority-lowered"] == "7" and seen[-1].urgency == 7
    bad = await s.client.patch("/api/tenants/acme", json={"max_urgency": 10}, headers=admin)
    assert bad.status_code == 400
