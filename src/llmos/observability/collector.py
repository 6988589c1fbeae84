"""Gauges read at scrape time from the kernel's live state: the schedulers' queues and slots,
their queueing model, and the resident models' memory.

The kernel supplies :class:`StateSources` (plain callables, so this package never imports the
kernel); a source that fails is skipped for that scrape — metrics are for display and must
never fail a scrape or a request.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TypeVar

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from llmos.resources.residency import ResidentInfo
from llmos.scheduler.stats import SchedulerStats

log = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass(frozen=True)
class StateSources:
    scheduler_stats: Callable[[], Sequence[SchedulerStats]]
    residents: Callable[[], Sequence[ResidentInfo]]
    memory: Callable[[], tuple[int, int]]
    """(bytes charged to resident models, the RAM budget in bytes)."""


@dataclass(frozen=True)
class State:
    stats: Sequence[SchedulerStats] = ()
    residents: Sequence[ResidentInfo] = ()
    memory: tuple[int, int] | None = None


class StateCollector(Collector):
    """Yields the live gauges; ``sources`` is set once the kernel exists."""

    def __init__(self) -> None:
        self.sources: StateSources | None = None

    def read(self) -> State:
        src = self.sources
        if src is None:
            return State()
        return State(
            stats=_safe(src.scheduler_stats, ()),
            residents=_safe(src.residents, ()),
            memory=_safe(src.memory, None),
        )

    def describe(self) -> Iterator[GaugeMetricFamily]:
        return iter(())  # labels vary per scrape; nothing to check at registration

    def collect(self) -> Iterator[GaugeMetricFamily]:
        state = self.read()
        yield from _scheduler_gauges(state.stats)
        yield from _residency_gauges(state.residents, state.memory)


def _scheduler_gauges(stats: Sequence[SchedulerStats]) -> Iterator[GaugeMetricFamily]:
    depth = GaugeMetricFamily("llmos_queue_depth", "Requests waiting for a slot, per model", labels=["model"])
    by_tenant = GaugeMetricFamily(
        "llmos_tenant_queue_depth",
        "Requests waiting for a slot, per model and tenant",
        labels=["model", "tenant"],
    )
    running = GaugeMetricFamily(
        "llmos_running_sequences", "Sequences holding an engine slot, per model", labels=["model"]
    )
    tenant_running = GaugeMetricFamily(
        "llmos_tenant_running_sequences",
        "Sequences holding a slot, per model and tenant",
        labels=["model", "tenant"],
    )
    slots = GaugeMetricFamily(
        "llmos_scheduler_slots", "Engine slots (batch width), per model", labels=["model"]
    )
    util = GaugeMetricFamily(
        "llmos_queue_utilization",
        "Offered load rho = lambda * E[S] / slots (queueing model)",
        labels=["model"],
    )
    arrival = GaugeMetricFamily(
        "llmos_queue_arrival_rate", "Recent arrival rate in requests per second", labels=["model"]
    )
    predicted = GaugeMetricFamily(
        "llmos_queue_predicted_wait_seconds",
        "Mean queue wait the queueing model predicts (formula: load_aware = birth-death chain with the "
        "measured service rate per batch size, mmc = Erlang C, mg1 = Pollaczek-Khinchine)",
        labels=["model", "formula"],
    )
    observed = GaugeMetricFamily(
        "llmos_queue_observed_wait_seconds",
        "Recent observed queue wait (stat: mean, p95)",
        labels=["model", "stat"],
    )
    for s in stats:
        depth.add_metric([s.model], s.queued)
        running.add_metric([s.model], s.running)
        slots.add_metric([s.model], s.slots)
        for t in s.tenants:
            by_tenant.add_metric([s.model, t.tenant], t.queued)
            tenant_running.add_metric([s.model, t.tenant], t.running)
        q = s.queue_model
        arrival.add_metric([s.model], q.arrival_rate)
        if q.utilization is not None:
            util.add_metric([s.model], q.utilization)
        formulas = (
            ("load_aware", q.predicted_wait_s),
            ("mmc", q.predicted_wait_mmc_s),
            ("mg1", q.predicted_wait_mg1_s),
        )
        for formula, value in formulas:
            if value is not None:
                predicted.add_metric([s.model, formula], value)
        for stat, value in (("mean", q.observed_wait_mean_s), ("p95", q.observed_wait_p95_s)):
            if value is not None:
                observed.add_metric([s.model, stat], value)
    yield from (depth, by_tenant, running, tenant_running, slots, util, arrival, predicted, observed)


def _residency_gauges(
    residents: Sequence[ResidentInfo], memory: tuple[int, int] | None
) -> Iterator[GaugeMetricFamily]:
    resident = GaugeMetricFamily(
        "llmos_model_resident",
        "1 per resident model, labelled with its state",
        labels=["model", "state", "device"],
    )
    mem = GaugeMetricFamily(
        "llmos_model_memory_bytes",
        "Resident model memory (kind: estimated, measured = worker RSS, charged = what the budget counts)",
        labels=["model", "kind"],
    )
    in_flight = GaugeMetricFamily(
        "llmos_model_in_flight_requests", "Requests holding a resident model", labels=["model"]
    )
    for r in residents:
        resident.add_metric([r.model, r.state, r.device], 1)
        mem.add_metric([r.model, "estimated"], r.estimated_bytes)
        mem.add_metric([r.model, "charged"], r.charged_bytes)
        if r.measured_bytes is not None:
            mem.add_metric([r.model, "measured"], r.measured_bytes)
        in_flight.add_metric([r.model], r.in_flight)
    yield from (resident, mem, in_flight)
    if memory is not None:
        used, budget = memory
        yield GaugeMetricFamily(
            "llmos_memory_used_bytes", "Bytes charged to resident models (RAM)", value=used
        )
        yield GaugeMetricFamily("llmos_memory_budget_bytes", "RAM the resident models may hold", value=budget)


def _safe(fn: Callable[[], T], default: T) -> T:
    try:
        return fn()
    except Exception as exc:  # a snapshot is for display; never fail a scrape over it
        log.debug("metrics source failed: %s", exc)
        return default
