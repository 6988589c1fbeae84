"""Scheduling policies behind one interface (:class:`Policy`), and a factory by name."""

from __future__ import annotations

from llmos.config import SchedulerConfig
from llmos.errors import InvalidRequest
from llmos.scheduler.policies.base import Policy, Schedulable
from llmos.scheduler.policies.fair import FairPolicy
from llmos.scheduler.policies.fcfs import FcfsPolicy
from llmos.scheduler.policies.priority import PriorityPolicy
from llmos.scheduler.policies.round_robin import RoundRobinPolicy
from llmos.scheduler.policies.tiered import TieredPolicy

POLICY_NAMES = ("tiered", "fcfs", "priority", "round_robin", "fair")
"""Every policy by name; the first is the default (``SchedulerConfig.policy``)."""


def make_policy(name: str, config: SchedulerConfig | None = None) -> Policy:
    """A fresh policy by name (one of :data:`POLICY_NAMES`) configured from ``config``."""
    cfg = config or SchedulerConfig()
    if name == "tiered":
        return TieredPolicy(cfg.tenant_weights, aging_seconds=cfg.aging_seconds)
    if name == "fcfs":
        return FcfsPolicy()
    if name == "priority":
        return PriorityPolicy(aging_seconds=cfg.aging_seconds)
    if name == "round_robin":
        return RoundRobinPolicy()
    if name == "fair":
        return FairPolicy(cfg.tenant_weights)
    raise InvalidRequest(
        f"unknown scheduling policy {name!r}; expected one of {POLICY_NAMES}", param="policy"
    )


__all__ = [
    "POLICY_NAMES",
    "FairPolicy",
    "FcfsPolicy",
    "Policy",
    "PriorityPolicy",
    "RoundRobinPolicy",
    "Schedulable",
    "TieredPolicy",
    "make_policy",
]
