"""Typed snapshots of a model scheduler's state, for the admin API, ``llmos ps`` and tests."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from llmos.types import TenantId

RequestPhase = Literal["queued", "running", "preempted"]


@dataclass(frozen=True)
class QueueModelStats:
    """Live queueing estimates for one model. Times in seconds; None where not yet known or unstable.

    ``utilization`` is ρ = λ·E[S]/c. ``predicted_wait_mmc_s`` is the M/M/c (Erlang C) mean queue
    wait and ``predicted_wait_mg1_s`` the M/G/1 (Pollaczek–Khinchine) mean queue wait of one
    server c times as fast (service time S/c); both None when ρ ≥ 1 (the queue grows without bound).
    ``predicted_wait_s`` is the load-aware prediction (service rates per batch size measured from
    the model's own steps; see :mod:`llmos.scheduler.queue_model`), the one to act on; None
    before anything was measured or when the load saturates the model. ``step_time_s`` is the
    step time with 1 … ``slots`` sequences in the batch (measured or extrapolated),
    ``steps_per_request`` the mean steps a request holds a slot and ``steps_scv`` their squared
    coefficient of variation.
    """

    arrival_rate: float
    service_mean_s: float | None
    service_var_s2: float | None
    slots: int
    utilization: float | None
    predicted_wait_mmc_s: float | None
    predicted_wait_mg1_s: float | None
    observed_wait_mean_s: float | None
    observed_wait_p95_s: float | None
    arrivals: int
    services: int
    waits: int
    predicted_wait_s: float | None = None
    step_time_s: tuple[float, ...] = ()
    steps_per_request: float | None = None
    steps_scv: float = 1.0


@dataclass(frozen=True)
class TenantStats:
    tenant: TenantId
    queued: int
    running: int
    prompt_tokens: int
    """Prompt tokens read for this tenant since the scheduler started."""
    output_tokens: int
    """Tokens generated for this tenant since the scheduler started."""


@dataclass(frozen=True)
class RequestState:
    request_id: str
    tenant: TenantId
    urgency: int
    phase: RequestPhase
    position: int | None
    """0-based place in the admission order; None while running."""
    estimated_start_s: float | None
    """Seconds from now until it is expected to get a slot; 0 while running."""
    waited_s: float
    completion_tokens: int
    deadline_in_s: float | None


@dataclass(frozen=True)
class SchedulerStats:
    model: str
    policy: str
    accepting: bool
    slots: int
    n_batch: int
    running: int
    queued: int
    submitted: int
    completed: int
    preemptions: int
    timeouts: int
    cancelled: int
    failed: int
    rejected: int
    steps: int
    tenants: tuple[TenantStats, ...]
    requests: tuple[RequestState, ...]
    queue_model: QueueModelStats
    policy_state: dict[str, float] = field(default_factory=dict)
    tenant_weights: dict[str, float] = field(default_factory=dict)
    """Fair-share weights by tenant, as the scheduler holds them (tenants not named weigh 1)."""


@dataclass(frozen=True)
class TenantCounts:
    tenant: TenantId
    queued: int
    running: int


@dataclass(frozen=True)
class SchedulerCounts:
    """The few numbers admission control needs, cheap enough to publish after every step."""

    running: int
    queued: int
    tenants: tuple[TenantCounts, ...]
    """Tenants with requests queued or running."""
    expected_service_s: float
    """Mean time a request holds a slot (the queueing model's), for Retry-After estimates."""
    accepting: bool = True


@dataclass(frozen=True)
class QueuePosition:
    """Where one waiting request stands: its 0-based place in the admission order, and the
    seconds until it is expected to get a slot (None when not yet known)."""

    request_id: str
    position: int
    estimated_start_s: float | None
