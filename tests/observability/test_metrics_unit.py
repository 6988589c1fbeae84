"""The metrics object on its own: observations with an injected clock, scheduler and residency events."""

from __future__ import annotations

import pytest

from llmos.errors import EngineDeadError, RateLimited
from llmos.observability.collector import StateSources
from llmos.observability.metrics import Metrics, ObservedEventLog, status_of
from llmos.resources.residency_events import ResourceEvent
from llmos.scheduler.request_events import SchedulerEvent
from llmos.scheduler.stats import SchedulerStats


class Clock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def value(m: Metrics, name: str, **labels: str) -> float | None:
    return m.registry.get_sample_value(name, labels)


def test_request_latencies_tokens_and_status() -> None:
    clock = Clock()
    m = Metrics(clock)
    obs = m.start_request("smol:1", "acme")
    clock.t += 0.5
    obs.output(1)
    clock.t += 1.5
    obs.output(4)
    obs.finish("ok", prompt_tokens=7, completion_tokens=5, longest_choice_tokens=5)
    obs.finish("ok", prompt_tokens=7, completion_tokens=5, longest_choice_tokens=5)  # ignored
    assert value(m, "llmos_requests_total", model="smol:1", tenant="acme", status="ok") == 1
    assert value(m, "llmos_prompt_tokens_total", model="smol:1", tenant="acme") == 7
    assert value(m, "llmos_completion_tokens_total", model="smol:1", tenant="acme") == 5
    assert value(m, "llmos_time_to_first_token_seconds_sum", model="smol:1") == pytest.approx(0.5)
    assert value(m, "llmos_e2e_request_latency_seconds_sum", model="smol:1") == pytest.approx(2.0)
    # (end - first output) / (tokens - 1) = 1.5 / 4
    assert value(m, "llmos_time_per_output_token_seconds_sum", model="smol:1") == pytest.approx(0.375)
    assert value(m, "llmos_time_to_first_token_seconds_bucket", model="smol:1", le="0.5") == 1
    assert value(m, "llmos_time_to_first_token_seconds_bucket", model="smol:1", le="0.25") == 0


def test_summary_reports_totals_and_recent_quantiles() -> None:
    clock = Clock()
    m = Metrics(clock)
    for ttft in (0.1, 0.2, 0.3, 0.4):
        obs = m.start_request("smol:1", "a")
        clock.t += ttft
        obs.output(1)
        obs.finish("ok", prompt_tokens=2, completion_tokens=1, longest_choice_tokens=1)
    failed = m.start_request("smol:1", "a")
    failed.finish("engine_dead")
    clock.t += 120  # everything above is now older than the window
    late = m.start_request("smol:1", "b")
    clock.t += 0.05
    late.output(3)
    late.finish("ok", completion_tokens=3, longest_choice_tokens=3)
    summary = m.summary(window_s=60)
    totals = summary["totals"]
    assert totals == {"requests": 6, "errors": 1, "prompt_tokens": 8, "completion_tokens": 7}
    recent = summary["recent"]
    assert isinstance(recent, dict) and recent["requests"] == 1 and recent["errors"] == 0
    assert recent["ttft_s"]["count"] == 1
    whole = m.summary(window_s=600)["recent"]
    assert isinstance(whole, dict) and whole["errors"] == 1
    assert whole["ttft_s"]["p50"] == pytest.approx(0.2) and whole["ttft_s"]["max"] == pytest.approx(0.4)
    models = summary["models"]
    assert isinstance(models, list) and [x["model"] for x in models] == ["smol:1"]


def test_scheduler_listener_queue_wait_preemptions_rejections() -> None:
    m = Metrics(Clock())
    on_event = m.scheduler_listener("smol:1")
    on_event(SchedulerEvent("queue", "r1", "a", at=10.0))
    on_event(SchedulerEvent("queue", "r2", "a", at=10.0))
    on_event(SchedulerEvent("admit", "r1", "a", at=10.25))
    on_event(SchedulerEvent("preempt", "r1", "a", at=11.0, detail="policy"))
    on_event(SchedulerEvent("restore", "r1", "a", at=12.0))  # a restore is not a second wait
    on_event(SchedulerEvent("preempt", "r1", "a", at=13.0, detail="engine"))
    on_event(SchedulerEvent("cancel", "r2", "a", at=14.0))  # never admitted: no wait observed
    on_event(SchedulerEvent("reject", "r3", "b", at=15.0, detail="rate_limit_exceeded"))
    assert value(m, "llmos_queue_wait_seconds_count", model="smol:1") == 1
    assert value(m, "llmos_queue_wait_seconds_sum", model="smol:1") == pytest.approx(0.25)
    assert value(m, "llmos_preemptions_total", model="smol:1", reason="policy") == 1
    assert value(m, "llmos_preemptions_total", model="smol:1", reason="engine") == 1
    assert (
        value(m, "llmos_scheduler_rejections_total", model="smol:1", tenant="b", reason="rate_limit_exceeded")
        == 1
    )


def test_residency_events_count_evictions() -> None:
    m = Metrics(Clock())
    log = ObservedEventLog(m)
    log.record(ResourceEvent(at=1.0, kind="load", model="a:1", reason="", bytes=10))
    log.record(ResourceEvent(at=2.0, kind="evict", model="a:1", reason="room", bytes=10, for_model="b:1"))
    assert value(m, "llmos_model_evictions_total", model="a:1") == 1
    assert value(m, "llmos_residency_events_total", model="a:1", kind="load") == 1
    assert [e.kind for e in log.recent()] == ["load", "evict"]


def test_status_labels_are_error_codes() -> None:
    assert status_of(None) == "ok"
    assert status_of(RateLimited("slow down", retry_after=1.0)) == "rate_limit_exceeded"
    assert status_of(EngineDeadError("gone")) == "engine_dead"
    assert status_of(RuntimeError("bug")) == "internal_error"


def test_each_metrics_object_has_its_own_registry() -> None:
    a, b = Metrics(Clock()), Metrics(Clock())
    a.worker_replaced("x:1")
    assert value(a, "llmos_worker_restarts_total", model="x:1") == 1
    assert value(b, "llmos_worker_restarts_total", model="x:1") is None
    text = a.render().decode()
    assert "# TYPE llmos_requests_total counter" in text and 'llmos_build_info{version="' in text


def test_history_spreads_tokens_over_time_and_places_latencies() -> None:
    clock = Clock()  # t = 100
    m = Metrics(clock)
    obs = m.start_request("smol:1", "a")
    clock.t = 101.0
    obs.output(10)  # 10 tokens in the step [100, 105)
    clock.t = 106.0
    obs.output(20)  # 20 tokens in the step [105, 110)
    obs.finish("ok", completion_tokens=30, longest_choice_tokens=30)
    clock.t = 110.0
    points = m.summary(history_s=10, step_s=5)["history"]
    assert isinstance(points, list) and [p["t"] for p in points] == [-5.0, 0.0]
    first, second = points
    assert first["tokens_per_s"] == 2.0 and first["requests_per_min"] == 0 and first["ttft_p50_s"] is None
    assert second["tokens_per_s"] == 4.0 and second["requests_per_min"] == 12.0
    assert second["ttft_p50_s"] == pytest.approx(1.0) and second["e2e_p50_s"] == pytest.approx(6.0)


def test_a_failing_source_never_fails_a_scrape() -> None:
    m = Metrics(Clock())

    def broken() -> list[SchedulerStats]:
        raise RuntimeError("scheduler went away")

    m.watch(StateSources(scheduler_stats=broken, residents=lambda: [], memory=lambda: (5, 10)))
    text = m.render().decode()
    assert "llmos_memory_used_bytes 5.0" in text and "llmos_memory_budget_bytes 10.0" in text
    assert "llmos_running_sequences{" not in text
    summary = m.summary()
    assert summary["running"] == 0 and summary["models"] == []


def test_tenant_labels_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("llmos.observability.metrics.MAX_TENANT_LABELS", 2)
    m = Metrics(Clock())
    for tenant in ("a", "b", "c", "a"):
        m.start_request("x:1", tenant).finish("ok")
    assert value(m, "llmos_requests_total", model="x:1", tenant="a", status="ok") == 2
    assert value(m, "llmos_requests_total", model="x:1", tenant="other", status="ok") == 1
    assert value(m, "llmos_requests_total", model="x:1", tenant="c", status="ok") is None
