"""``/api/scheduler`` and ``/api/resources`` shapes: the scheduler's and resource manager's
frozen stats records, served as they are (pydantic validates stdlib dataclasses)."""

from __future__ import annotations

from pydantic import BaseModel

from llmos.resources.budget import MemoryBudget
from llmos.resources.inventory import Inventory
from llmos.resources.residency import ResidentInfo
from llmos.resources.residency_events import ResourceEvent
from llmos.scheduler.stats import RequestState, SchedulerStats


class SchedulerResponse(BaseModel):
    models: list[SchedulerStats]


class ModelRequests(BaseModel):
    model: str
    requests: list[RequestState]


class SchedulerRequestsResponse(BaseModel):
    models: list[ModelRequests]


class ResourcesResponse(BaseModel):
    inventory: Inventory
    budget: MemoryBudget
    used_bytes: int
    residents: list[ResidentInfo]


class ResourceEventsResponse(BaseModel):
    events: list[ResourceEvent]


class PinRequest(BaseModel):
    model: str
