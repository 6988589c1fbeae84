"""``/api/scheduler`` and ``/api/resources`` shapes: the scheduler's and resource manager's
frozen stats records, served as they are (pydantic validates stdlib dataclasses)."""

from __future__ import annotations

from pydantic import BaseModel

from llmos.resources.budget import MemoryBudget
from llmos.resources.inventory import Inventory
from llmos.resources.residency import ResidentInfo
from llmos.resources.residency_events import ResourceEvent
from llmos.scheduler.stats import RequestState, SchedulerStats
from llmos.training.manager import RunningJob


class SchedulerResponse(BaseModel):
    models: list[SchedulerStats]


class ModelRequests(BaseModel):
    model: str
    requests: list[RequestState]


class SchedulerRequestsResponse(BaseModel):
    models: list[ModelRequests]


class QueuedJob(BaseModel):
    id: str
    tenant: str
    model: str
    created_at: int


class TrainingView(BaseModel):
    """Fine-tuning beside inference: the yield policy, the caller's running jobs and those
    waiting for memory or a job slot."""

    yield_policy: str
    max_jobs: int
    jobs: list[RunningJob]
    queued: list[QueuedJob] = []


class ResourcesResponse(BaseModel):
    inventory: Inventory
    budget: MemoryBudget
    used_bytes: int
    """Models and running fine-tuning jobs together."""
    residents: list[ResidentInfo]
    training: TrainingView | None = None


class ResourceEventsResponse(BaseModel):
    events: list[ResourceEvent]


class PinRequest(BaseModel):
    model: str
