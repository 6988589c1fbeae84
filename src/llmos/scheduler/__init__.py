"""The scheduler: per-model queues, policies, admission control, preemption and a live queue model.

Public API::

    sched = ModelScheduler(engine, model="smollm2:135m", config=config.scheduler)
    sched.start()
    handle = sched.submit(GenerationRequest(request_id, spec, RequestClass(tenant, urgency, deadline)))
    async for out in handle: ...          # SeqOutput items until one with finish_reason
    await handle.cancel()
    sched.snapshot()                      # SchedulerStats
    await sched.stop(drain_timeout=30)
"""

from __future__ import annotations

from llmos.scheduler.admission import AdmissionControl
from llmos.scheduler.events import SchedulerEvent
from llmos.scheduler.handle import RequestHandle
from llmos.scheduler.model_scheduler import ModelScheduler
from llmos.scheduler.policies import POLICY_NAMES, Policy, make_policy
from llmos.scheduler.queue_model import QueueModel, erlang_b, erlang_c, mg1_mean_wait, mmc_mean_wait
from llmos.scheduler.request import DEFAULT_URGENCY, GenerationRequest, RequestClass, urgency_for_service_tier
from llmos.scheduler.stats import QueueModelStats, RequestState, SchedulerStats, TenantStats

__all__ = [
    "DEFAULT_URGENCY",
    "POLICY_NAMES",
    "AdmissionControl",
    "GenerationRequest",
    "ModelScheduler",
    "Policy",
    "QueueModel",
    "QueueModelStats",
    "RequestClass",
    "RequestHandle",
    "RequestState",
    "SchedulerEvent",
    "SchedulerStats",
    "TenantStats",
    "erlang_b",
    "erlang_c",
    "make_policy",
    "mg1_mean_wait",
    "mmc_mean_wait",
    "urgency_for_service_tier",
]
