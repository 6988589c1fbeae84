"""``/metrics`` and ``/api/metrics/summary`` of a server over fake engines."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from llmos.config import load_config
from llmos.kernel.types import GenerationParams, RequestMeta
from llmos.types import ChatMessage

from .conftest import App, AppFactory

pytestmark = pytest.mark.anyio

MSG = [{"role": "user", "content": "hi"}]
ADMIN_KEY = "sk-llmos-observability-admin-key-0123456789"


async def scrape(
    s: App, headers: dict[str, str] | None = None
) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    r = await s.client.get("/metrics", headers=headers)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(r.text)
        for sample in family.samples
    }


def get(
    samples: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str
) -> float | None:
    return samples.get((name, frozenset(labels.items())))


async def test_a_chat_shows_up_in_every_metric(serve: AppFactory) -> None:
    s = await serve()
    body = {"model": "fake:1", "messages": MSG, "max_tokens": 5}
    r = await s.client.post("/v1/chat/completions", json=body, headers={"x-llmos-tenant": "acme"})
    assert r.status_code == 200
    usage = r.json()["usage"]
    m = await scrape(s)
    assert get(m, "llmos_requests_total", model="fake:1", tenant="acme", status="ok") == 1
    assert get(m, "llmos_prompt_tokens_total", model="fake:1", tenant="acme") == usage["prompt_tokens"]
    assert (
        get(m, "llmos_completion_tokens_total", model="fake:1", tenant="acme") == usage["completion_tokens"]
    )
    for hist in ("time_to_first_token", "e2e_request_latency", "time_per_output_token", "queue_wait"):
        assert get(m, f"llmos_{hist}_seconds_count", model="fake:1") == 1, hist
    assert get(m, "llmos_model_resident", model="fake:1", state="ready", device="cpu") == 1
    assert (get(m, "llmos_model_memory_bytes", model="fake:1", kind="estimated") or 0) > 0
    assert get(m, "llmos_running_sequences", model="fake:1") == 0
    assert get(m, "llmos_queue_depth", model="fake:1") == 0
    assert get(m, "llmos_scheduler_slots", model="fake:1") == 16
    assert get(m, "llmos_residency_events_total", model="fake:1", kind="load") == 1
    assert (get(m, "llmos_memory_budget_bytes") or 0) > (get(m, "llmos_memory_used_bytes") or 0) > 0
    assert get(m, "llmos_http_requests_total", method="POST", route="/v1/chat/completions", status="200") == 1
    await s.client.get("/v1/models/fake:1")
    assert (await s.client.get("/no/such/path/12345")).status_code == 404
    m = await scrape(s)
    assert get(m, "llmos_http_requests_total", method="GET", route="unmatched", status="404") == 1
    assert (
        get(m, "llmos_http_requests_total", method="GET", route="/v1/models/{model:path}", status="200") == 1
    )
    assert get(m, "llmos_http_requests_total", method="GET", route="/metrics", status="200") == 1


async def test_summary_for_the_console(serve: AppFactory) -> None:
    s = await serve()
    for _ in range(2):
        body = {"model": "fake:1", "messages": MSG, "max_tokens": 4}
        assert (await s.client.post("/v1/chat/completions", json=body)).status_code == 200
    summary = (await s.client.get("/api/metrics/summary", params={"window": 30})).json()
    assert summary["window_s"] == 30 and summary["totals"]["requests"] == 2
    assert summary["recent"]["requests"] == 2 and summary["recent"]["ttft_s"]["count"] == 2
    [model] = summary["models"]
    assert model["model"] == "fake:1" and model["slots"] == 16 and model["totals"]["requests"] == 2
    assert (await s.client.get("/api/metrics/summary", params={"window": 0})).status_code in (400, 422)


async def test_failures_and_cancellations_are_labelled(serve: AppFactory, tmp_path: Path) -> None:
    s = await serve(config=load_config(home=tmp_path / "h", n_slots=16, n_ctx=2048), step_cost_s=0.01)
    long = [{"role": "user", "content": "word " * 400}]  # longer than one slot's 128 tokens
    r = await s.client.post("/v1/chat/completions", json={"model": "fake:1", "messages": long})
    assert r.status_code == 400
    meta = RequestMeta(request_id="r-cancel", tenant="local")
    gen = await s.kernel.chat(
        "fake:1", [ChatMessage(role="user", content="hi")], GenerationParams(max_tokens=1000), meta
    )
    async for _ in gen:
        break  # the client goes away after the first piece
    await gen.aclose()
    m = await scrape(s)
    assert get(m, "llmos_requests_total", model="fake:1", tenant="local", status="cancelled") == 1
    assert get(m, "llmos_requests_total", model="fake:1", tenant="local", status="invalid_request") == 1
    missing = await s.client.post("/v1/chat/completions", json={"model": "ghost:1", "messages": MSG})
    assert missing.status_code == 404
    m = await scrape(s)
    assert not any(name == "llmos_requests_total" and ("model", "ghost:1") in labels for name, labels in m)


async def test_a_dead_worker_is_counted_as_a_restart(serve: AppFactory) -> None:
    s = await serve(die_after_steps=2)
    r = await s.client.post(
        "/v1/chat/completions", json={"model": "fake:1", "messages": MSG, "max_tokens": 50}
    )
    assert r.status_code == 503
    m = await scrape(s)
    assert get(m, "llmos_worker_restarts_total", model="fake:1") == 1
    assert get(m, "llmos_requests_total", model="fake:1", tenant="local", status="engine_dead") == 1


async def test_evictions(serve: AppFactory, tmp_path) -> None:  # type: ignore[no-untyped-def]
    probe = await serve()
    await probe.client.post("/api/load", json={"model": "fake:1"})
    one = (await probe.client.get("/api/resources")).json()["used_bytes"]
    config = load_config(home=tmp_path / "evict", memory_budget=int(one * 1.5))
    s = await serve(config=config, models=["fake:1", "fake:2"])
    assert (await s.client.post("/api/load", json={"model": "fake:1"})).status_code == 200
    assert (await s.client.post("/api/load", json={"model": "fake:2"})).status_code == 200
    m = await scrape(s)
    assert get(m, "llmos_model_evictions_total", model="fake:1") == 1
    assert get(m, "llmos_model_resident", model="fake:2", state="ready", device="cpu") == 1
    assert get(m, "llmos_model_resident", model="fake:1", state="ready", device="cpu") is None


async def test_metrics_can_require_an_admin_key(serve: AppFactory, tmp_path) -> None:  # type: ignore[no-untyped-def]
    config = load_config(
        home=tmp_path / "auth", auth="required", admin_key=ADMIN_KEY, metrics_require_admin=True
    )
    s = await serve(config=config)
    assert (await s.client.get("/metrics")).status_code == 401
    ok = await s.client.get("/metrics", headers={"Authorization": f"Bearer {ADMIN_KEY}"})
    assert ok.status_code == 200 and "llmos_build_info" in ok.text
    # Where keys are required, /metrics names tenants and their tokens: it needs a key (an
    # admin's, or one with metrics:read), even without LLMOS_METRICS_REQUIRE_ADMIN.
    keyed = await serve(config=load_config(home=tmp_path / "keyed", auth="required", admin_key=ADMIN_KEY))
    assert (await keyed.client.get("/metrics")).status_code == 401
    ok = await keyed.client.get("/metrics", headers={"Authorization": f"Bearer {ADMIN_KEY}"})
    assert ok.status_code == 200
    open_config = load_config(home=tmp_path / "open", auth="off")
    assert (await (await serve(config=open_config)).client.get("/metrics")).status_code == 200


async def test_a_preemption_by_an_urgent_request(serve: AppFactory, tmp_path) -> None:  # type: ignore[no-untyped-def]
    config = load_config(home=tmp_path / "prio", n_slots=1, n_ctx=2048, scheduler_policy="priority")
    s = await serve(config=config, step_cost_s=0.01)
    low = {"model": "fake:1", "messages": MSG, "max_tokens": 300, "priority": 1}
    running = asyncio.create_task(s.client.post("/v1/chat/completions", json=low))
    for _ in range(2000):
        loaded = s.kernel.loaded("fake:1")
        if loaded is not None and loaded.core.running == 1:
            break
        await asyncio.sleep(0.005)
    high = {"model": "fake:1", "messages": MSG, "max_tokens": 3, "priority": 9}
    assert (await s.client.post("/v1/chat/completions", json=high)).status_code == 200
    assert (await running).status_code == 200
    m = await scrape(s)
    assert get(m, "llmos_preemptions_total", model="fake:1", reason="policy") == 1
    assert get(m, "llmos_queue_wait_seconds_count", model="fake:1") == 2


async def test_embeddings_are_counted(serve: AppFactory) -> None:
    s = await serve()
    r = await s.client.post("/v1/embeddings", json={"model": "fake:1", "input": ["one", "two words"]})
    assert r.status_code == 200, r.text
    m = await scrape(s)
    assert get(m, "llmos_embedding_requests_total", model="fake:1", tenant="local", status="ok") == 1
    tokens = r.json()["usage"]["prompt_tokens"]
    assert get(m, "llmos_embedding_input_tokens_total", model="fake:1", tenant="local") == tokens
    assert get(m, "llmos_embedding_latency_seconds_count", model="fake:1") == 1
    assert get(m, "llmos_requests_total", model="fake:1", tenant="local", status="ok") is None


async def test_a_spent_budget_is_counted_as_a_limit_rejection(serve: AppFactory, tmp_path) -> None:  # type: ignore[no-untyped-def]
    config = load_config(home=tmp_path / "budget", auth="required", admin_key=ADMIN_KEY)
    s = await serve(config=config)
    admin = {"Authorization": f"Bearer {ADMIN_KEY}"}
    body = {"name": "acme", "limits": {"token_budget": 1, "budget_period": "day"}}
    assert (await s.client.post("/api/tenants", json=body, headers=admin)).status_code == 201
    key = (await s.client.post("/api/keys", json={"tenant": "acme"}, headers=admin)).json()["key"]
    chat = {"model": "fake:1", "messages": MSG, "max_tokens": 4}
    acme = {"Authorization": f"Bearer {key}"}
    assert (await s.client.post("/v1/chat/completions", json=chat, headers=acme)).status_code == 200
    refused = await s.client.post("/v1/chat/completions", json=chat, headers=acme)
    assert refused.status_code == 429 and refused.json()["error"]["code"] == "insufficient_quota"
    m = await scrape(s, admin)  # keys are required: /metrics needs metrics:read or admin
    assert get(m, "llmos_limit_rejections_total", tenant="acme", reason="insufficient_quota") == 1
    assert get(m, "llmos_requests_total", model="fake:1", tenant="acme", status="ok") == 1
