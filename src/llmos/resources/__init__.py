"""Resources: inventory, memory estimates, budget, residency (eviction, keep-alive), threads."""

from __future__ import annotations

from llmos.resources.budget import MemoryBudget, default_budget
from llmos.resources.estimate import (
    EstimateParams,
    MemoryEstimate,
    ModelShape,
    estimate_gguf,
    estimate_memory,
    read_shape,
)
from llmos.resources.inventory import GpuInfo, Inventory, take_inventory
from llmos.resources.keepalive import FOREVER, format_keep_alive, parse_keep_alive
from llmos.resources.residency import EvictionPlan, Lease, LoadGrant, ResidencyManager, ResidentInfo
from llmos.resources.residency_events import EventLog, ResourceEvent
from llmos.resources.threads import threads_for
from llmos.resources.wiring import estimate_model, residency_from_config

__all__ = [
    "FOREVER",
    "EstimateParams",
    "EventLog",
    "EvictionPlan",
    "GpuInfo",
    "Inventory",
    "Lease",
    "LoadGrant",
    "MemoryBudget",
    "MemoryEstimate",
    "ModelShape",
    "ResidencyManager",
    "ResidentInfo",
    "ResourceEvent",
    "default_budget",
    "estimate_gguf",
    "estimate_memory",
    "estimate_model",
    "format_keep_alive",
    "parse_keep_alive",
    "read_shape",
    "residency_from_config",
    "take_inventory",
    "threads_for",
]
