"""The scheduler: per-model queues, policies, admission control, preemption and a live queue model.

It runs inside each model's engine core (:mod:`llmos.core`), synchronously, beside the engine::

    sched = ModelScheduler(engine, model="smollm2:135m", config=config.scheduler)
    sched.add(GenerationRequest(request_id, spec, RequestClass(tenant, urgency, deadline)))
    for request_id, item in sched.step(): ...   # SeqOutput items (the last has a finish reason) or errors
    sched.abort(request_id)                      # gone at the next step
    sched.snapshot()                             # SchedulerStats
"""

from __future__ import annotations

from llmos.scheduler.admission import AdmissionControl
from llmos.scheduler.model_scheduler import Delivery, ModelScheduler
from llmos.scheduler.policies import POLICY_NAMES, Policy, make_policy
from llmos.scheduler.queue_model import QueueModel, erlang_b, erlang_c, mg1_mean_wait, mmc_mean_wait
from llmos.scheduler.request import DEFAULT_URGENCY, GenerationRequest, RequestClass, urgency_for_service_tier
from llmos.scheduler.request_events import SchedulerEvent
from llmos.scheduler.stats import (
    QueueModelStats,
    QueuePosition,
    RequestState,
    SchedulerCounts,
    SchedulerStats,
    TenantCounts,
    TenantStats,
)

__all__ = [
    "DEFAULT_URGENCY",
    "POLICY_NAMES",
    "AdmissionControl",
    "Delivery",
    "GenerationRequest",
    "ModelScheduler",
    "Policy",
    "QueueModel",
    "QueueModelStats",
    "QueuePosition",
    "RequestClass",
    "RequestState",
    "SchedulerCounts",
    "SchedulerEvent",
    "SchedulerStats",
    "TenantCounts",
    "TenantStats",
    "erlang_b",
    "erlang_c",
    "make_policy",
    "mg1_mean_wait",
    "mmc_mean_wait",
    "urgency_for_service_tier",
]
