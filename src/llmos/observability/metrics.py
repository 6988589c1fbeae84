"""Prometheus metrics of one llmos server, in its own registry (every metric is ``llmos_*``).

Counters and histograms are observed where the event happens: the kernel opens a
:class:`RequestObservation` per generation request (TTFT, TPOT, end-to-end latency, tokens,
the request's final status); each model scheduler reports queue waits and preemptions through
:meth:`Metrics.scheduler_listener`; the residency manager's event log reports loads, evictions
and expirations (:class:`ObservedEventLog`); the kernel reports replaced workers; the server's
admission check reports the requests a tenant's or key's limits refuse (:meth:`Metrics.limit_rejected`);
the access log reports HTTP requests. Gauges (queue depth, running sequences, the queueing model, resident
memory) are read from the scheduler and residency snapshots at scrape time
(:mod:`llmos.observability.collector`). ``docs/observability.md`` lists every metric.

Each :class:`Metrics` has its own ``CollectorRegistry``: many servers (tests build many apps)
never share or collide in the global one.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from llmos.observability.collector import StateCollector, StateSources
from llmos.observability.logging import annotate_request
from llmos.observability.observations import EmbeddingObservation, RequestObservation, status_of
from llmos.observability.window import RecentRequests, TokenRate, history, summarize
from llmos.resources.residency_events import EventLog, ResourceEvent
from llmos.scheduler.request_events import SchedulerEvent
from llmos.version import __version__

__all__ = ["EmbeddingObservation", "Metrics", "ObservedEventLog", "RequestObservation", "status_of"]

CONTENT_TYPE = CONTENT_TYPE_LATEST
MAX_TENANT_LABELS = 500
OTHER_TENANT = "other"

TTFT_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)
TPOT_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 1.0, 2.5)
E2E_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0, 600.0)
WAIT_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)
HTTP_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)


@dataclass
class _Totals:
    requests: int = 0
    errors: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0


class Metrics:
    """Every llmos metric, with the methods that observe them. Thread-safe.

    ``clock`` is monotonic seconds (the kernel's clock, so tests control latencies).
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter(
            "llmos_requests",
            "Generation requests finished, by model, tenant and status (ok, cancelled, or an error code)",
            ["model", "tenant", "status"],
            registry=r,
        )
        self.prompt_tokens = Counter(
            "llmos_prompt_tokens", "Prompt tokens of generation requests", ["model", "tenant"], registry=r
        )
        self.completion_tokens = Counter(
            "llmos_completion_tokens",
            "Tokens generated, counted as they stream",
            ["model", "tenant"],
            registry=r,
        )
        self.ttft = Histogram(
            "llmos_time_to_first_token_seconds",
            "From the request reaching the kernel (model load included) to its first output",
            ["model"],
            buckets=TTFT_BUCKETS,
            registry=r,
        )
        self.tpot = Histogram(
            "llmos_time_per_output_token_seconds",
            "Per request: (end - first output) / (output tokens - 1), for requests with 2+ tokens",
            ["model"],
            buckets=TPOT_BUCKETS,
            registry=r,
        )
        self.e2e = Histogram(
            "llmos_e2e_request_latency_seconds",
            "From the request reaching the kernel to its end, whatever the status",
            ["model"],
            buckets=E2E_BUCKETS,
            registry=r,
        )
        self.embedding_requests = Counter(
            "llmos_embedding_requests",
            "Embedding requests finished, by model, tenant and status (ok or an error code)",
            ["model", "tenant", "status"],
            registry=r,
        )
        self.embedding_tokens = Counter(
            "llmos_embedding_input_tokens", "Input tokens embedded", ["model", "tenant"], registry=r
        )
        self.embedding_latency = Histogram(
            "llmos_embedding_latency_seconds",
            "From the embedding request reaching the kernel (model load included) to its vectors",
            ["model"],
            buckets=E2E_BUCKETS,
            registry=r,
        )
        self.queue_wait = Histogram(
            "llmos_queue_wait_seconds",
            "Time a sequence waited in its model's scheduler queue before it first got a slot",
            ["model"],
            buckets=WAIT_BUCKETS,
            registry=r,
        )
        self.preemptions = Counter(
            "llmos_preemptions",
            "Running sequences preempted (reason: policy, or engine when the KV cache filled)",
            ["model", "reason"],
            registry=r,
        )
        self.rejections = Counter(
            "llmos_scheduler_rejections",
            "Requests the scheduler refused at admission (reason: the error code, e.g. rate_limit_exceeded)",
            ["model", "tenant", "reason"],
            registry=r,
        )
        self.limit_rejections = Counter(
            "llmos_limit_rejections",
            "Requests refused by their tenant's or key's limits before reaching a model (reason: the "
            "error code: rate_limit_exceeded, insufficient_quota when a token budget is spent)",
            ["tenant", "reason"],
            registry=r,
        )
        self.residency_events = Counter(
            "llmos_residency_events",
            "Residency decisions: load, evict, expire, unload, reject, load_failed",
            ["model", "kind"],
            registry=r,
        )
        self.evictions = Counter(
            "llmos_model_evictions",
            "Models unloaded to make room for another model",
            ["model"],
            registry=r,
        )
        self.worker_restarts = Counter(
            "llmos_worker_restarts",
            "Model worker processes that died and were replaced (the model reloads on its next request)",
            ["model"],
            registry=r,
        )
        self.http_requests = Counter(
            "llmos_http_requests",
            "HTTP requests answered, by method, route template and status code",
            ["method", "route", "status"],
            registry=r,
        )
        self.http_latency = Histogram(
            "llmos_http_request_duration_seconds",
            "HTTP request duration until the response (or its stream) ended",
            ["method", "route"],
            buckets=HTTP_BUCKETS,
            registry=r,
        )
        build = Gauge("llmos_build_info", "The llmos version (value 1)", ["version"], registry=r)
        build.labels(version=__version__).set(1)
        self._started = clock()
        self._state = StateCollector()
        r.register(self._state)
        self.recent = RecentRequests()
        self.token_rate = TokenRate()
        self._totals: dict[str, _Totals] = {}
        self._lock = threading.Lock()
        self._tenants: set[str] = set()

    # ---- sources read at scrape time ------------------------------------------------------

    def watch(self, sources: StateSources) -> None:
        """Read gauges (queues, running sequences, residency) from ``sources`` at every scrape."""
        self._state.sources = sources

    # ---- exposition -----------------------------------------------------------------------

    def render(self) -> bytes:
        """The Prometheus text exposition of every metric (content type :data:`CONTENT_TYPE`)."""
        return generate_latest(self.registry)

    def summary(
        self, window_s: float = 60.0, history_s: float = 300.0, step_s: float = 5.0
    ) -> dict[str, object]:
        """A JSON-ready picture for dashboards: totals since start; the last ``window_s``
        seconds' throughput and latency quantiles, overall and per model; and a ``history``
        of the last ``history_s`` seconds in ``step_s`` steps (see :func:`history`)."""
        now = self.clock()
        recent = self.recent.since(now - window_s)
        past = self.recent.since(now - history_s - step_s)
        with self._lock:
            totals = {m: _Totals(**vars(t)) for m, t in self._totals.items()}
        state = self._state.read()
        models = sorted(set(totals) | {s.model for s in state.stats})
        per_model = []
        for model in models:
            t = totals.get(model, _Totals())
            stats = next((s for s in state.stats if s.model == model), None)
            per_model.append(
                {
                    "model": model,
                    "totals": vars(t),
                    "running": stats.running if stats else 0,
                    "queued": stats.queued if stats else 0,
                    "slots": stats.slots if stats else 0,
                    "recent": summarize([s for s in recent if s.model == model], window_s),
                }
            )
        grand = _Totals()
        for t in totals.values():
            for key, value in vars(t).items():
                setattr(grand, key, getattr(grand, key) + value)
        return {
            "uptime_s": now - self._started,
            "window_s": window_s,
            "totals": vars(grand),
            "running": sum(s.running for s in state.stats),
            "queued": sum(s.queued for s in state.stats),
            "recent": summarize(recent, window_s),
            "history": history(past, self.token_rate, now, history_s, step_s),
            "models": per_model,
        }

    # ---- observation points ---------------------------------------------------------------

    def start_request(self, model: str, tenant: str) -> RequestObservation:
        """Open the observation of one generation request that starts now (also tags the
        current request's log lines with its tenant and model)."""
        annotate_request(tenant=tenant, model=model)
        return RequestObservation(self, model, self.tenant_label(tenant), self.clock())

    def start_embedding(self, model: str, tenant: str) -> EmbeddingObservation:
        """Open the observation of one embedding request that starts now."""
        annotate_request(tenant=tenant, model=model)
        return EmbeddingObservation(self, model, self.tenant_label(tenant), self.clock())

    def tenant_label(self, tenant: str) -> str:
        """``tenant``, or ``other`` once :data:`MAX_TENANT_LABELS` distinct tenants have been seen:
        with auth off a caller names its own tenant, and every name would be a new series."""
        with self._lock:
            if tenant in self._tenants:
                return tenant
            if len(self._tenants) >= MAX_TENANT_LABELS:
                return OTHER_TENANT
            self._tenants.add(tenant)
            return tenant

    def scheduler_listener(self, model: str) -> Callable[[SchedulerEvent], None]:
        """An ``on_event`` callback for ``model``'s scheduler: queue waits, preemptions, rejections."""
        arrivals: dict[str, float] = {}
        lock = threading.Lock()

        def on_event(event: SchedulerEvent) -> None:
            with lock:
                if event.kind == "queue":
                    arrivals[event.request_id] = event.at
                elif event.kind == "admit":
                    arrived = arrivals.pop(event.request_id, None)
                    if arrived is not None:
                        self.queue_wait.labels(model=model).observe(max(0.0, event.at - arrived))
                elif event.kind == "preempt":
                    self.preemptions.labels(model=model, reason=event.detail or "policy").inc()
                elif event.kind == "reject":
                    self.rejections.labels(
                        model=model, tenant=self.tenant_label(event.tenant), reason=event.detail or "rejected"
                    ).inc()
                else:  # finish, timeout, cancel, fail: a request still queued will never be admitted
                    if event.kind != "restore":
                        arrivals.pop(event.request_id, None)

        return on_event

    def limit_rejected(self, tenant: str, reason: str) -> None:
        """The security service refused a request of ``tenant`` with error code ``reason``."""
        self.limit_rejections.labels(tenant=self.tenant_label(tenant), reason=reason).inc()

    def residency_event(self, event: ResourceEvent) -> None:
        self.residency_events.labels(model=event.model, kind=event.kind).inc()
        if event.kind == "evict":
            self.evictions.labels(model=event.model).inc()

    def worker_replaced(self, model: str) -> None:
        self.worker_restarts.labels(model=model).inc()

    def http_request(self, method: str, route: str, status: int, seconds: float) -> None:
        self.http_requests.labels(method=method, route=route, status=str(status)).inc()
        self.http_latency.labels(method=method, route=route).observe(max(0.0, seconds))

    def record_totals(self, model: str, **deltas: int) -> None:
        """Add to ``model``'s running totals (the summary's ``totals``)."""
        with self._lock:
            t = self._totals.setdefault(model, _Totals())
            for key, value in deltas.items():
                setattr(t, key, getattr(t, key) + value)


class ObservedEventLog(EventLog):
    """The residency manager's event log, also counting each event in ``metrics``."""

    def __init__(self, metrics: Metrics, capacity: int = 256) -> None:
        super().__init__(capacity)
        self._metrics = metrics

    def record(self, event: ResourceEvent) -> None:
        super().record(event)
        self._metrics.residency_event(event)
