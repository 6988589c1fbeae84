"""The values the security subsystem hands out: tenants, keys, limits, usage and audit events.

Plain frozen dataclasses; ORM rows stay in ``llmos.storage`` and HTTP shapes in the server.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields, replace
from datetime import datetime
from typing import Any, Literal, get_args

from llmos.errors import Forbidden, InvalidRequest

BudgetPeriod = Literal["day", "week", "month"]
BUDGET_PERIODS: tuple[str, ...] = get_args(BudgetPeriod)

PLAN_WEIGHTS: dict[str, float] = {"free": 0.5, "standard": 1.0, "pro": 2.0, "enterprise": 4.0}
"""A tenant's plan sets its default weight in the scheduler's fair share (an explicit weight wins)."""
PLAN_URGENCY: dict[str, int] = {"free": 5, "standard": 5, "pro": 7, "enterprise": 8}
"""A tenant's plan sets the highest urgency (0-9) its requests run at: 5 is OpenAI's ``default``
service tier, 8 its ``priority``. An explicit ``max_urgency`` on the tenant wins."""
DEFAULT_PLAN = "standard"
URGENCY_RANGE = (0, 9)


@dataclass(frozen=True)
class Quota:
    """Limits of a tenant or of one key; ``None`` means unlimited.

    Both the tenant's and the key's quota apply to a request: the stricter one binds.
    """

    requests_per_minute: int | None = None
    tokens_per_minute: int | None = None
    concurrent_requests: int | None = None
    max_tokens_per_request: int | None = None
    token_budget: int | None = None
    """Prompt plus completion tokens allowed per ``budget_period`` (calendar, UTC)."""
    budget_period: BudgetPeriod = "month"

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name == "budget_period":
                if value not in BUDGET_PERIODS:
                    raise InvalidRequest(
                        f"budget_period must be one of {', '.join(BUDGET_PERIODS)}", param="budget_period"
                    )
            elif value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
                raise InvalidRequest(f"{f.name} must be a positive integer or null", param=f.name)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: Mapping[str, Any] | None) -> Quota:
        """A quota from stored or sent JSON; unknown fields are an error (a typo must not pass silently)."""
        data = dict(data or {})
        unknown = set(data) - {f.name for f in fields(cls)}
        if unknown:
            raise InvalidRequest(f"unknown limit(s): {', '.join(sorted(unknown))}", param="limits")
        if data.get("budget_period") is None:
            data.pop("budget_period", None)
        return cls(**data)

    def updated(self, changes: Mapping[str, Any]) -> Quota:
        """This quota with ``changes`` applied (a ``None`` value removes that limit)."""
        current = self.to_json()
        current.update(changes)
        return Quota.from_json(current)

    @property
    def unlimited(self) -> bool:
        return all(getattr(self, f.name) is None for f in fields(self) if f.name != "budget_period")

    def within(self, parent: Quota) -> Quota:
        """This quota as a child key of a key with ``parent``'s quota may hold: every limit the
        parent has and this one leaves out is inherited. Raises Forbidden for a limit above the
        parent's (a key cannot hand out more than it has)."""
        changes: dict[str, Any] = {}
        for f in fields(self):
            if f.name == "budget_period":
                continue
            mine, theirs = getattr(self, f.name), getattr(parent, f.name)
            if theirs is None:
                continue
            if mine is None:
                changes[f.name] = theirs
                if f.name == "token_budget":
                    changes["budget_period"] = parent.budget_period
            elif mine > theirs:
                raise Forbidden(
                    f"{f.name} is {mine}; the key making this key allows at most {theirs}",
                    param=f"limits.{f.name}",
                )
        return replace(self, **changes)


@dataclass(frozen=True)
class Tenant:
    name: str
    plan: str = DEFAULT_PLAN
    weight: float = 1.0
    limits: Quota = field(default_factory=Quota)
    store_prompts: bool = False
    """Opt-in flag: the tenant allows prompt bodies to be kept. llmos itself stores none."""
    created_at: datetime | None = None
    max_urgency: int | None = None
    """The highest urgency the tenant's requests run at; None: its plan's (:attr:`urgency_ceiling`)."""

    @property
    def urgency_ceiling(self) -> int:
        """The highest urgency this tenant's requests run at (a request asking more is lowered)."""
        if self.max_urgency is not None:
            return self.max_urgency
        return PLAN_URGENCY.get(self.plan, PLAN_URGENCY[DEFAULT_PLAN])


@dataclass(frozen=True)
class ApiKey:
    """A key's public record; the secret itself is shown once, at creation, and never stored."""

    id: str
    prefix: str
    tenant: str
    name: str
    scopes: tuple[str, ...]
    models: tuple[str, ...]
    limits: Quota
    created_at: datetime
    expires_at: datetime | None = None
    revoked_at: datetime | None = None
    last_used_at: datetime | None = None
    created_by: str = ""
    parent_id: str | None = None
    """The key that made this one (None when an admin did): it bounds this key's scopes, models,
    limits and expiry, and revoking it revokes this one."""

    def usable_at(self, now: datetime) -> bool:
        return self.revoked_at is None and (self.expires_at is None or now < self.expires_at)


@dataclass(frozen=True)
class StoredKey:
    """A key's record plus its hash: what authentication compares against."""

    key: ApiKey
    hash: str


@dataclass(frozen=True)
class UsageRecord:
    """One request's usage row. Prompt bodies are never part of it."""

    request_id: str
    tenant: str
    operation: str
    """What was asked: ``chat``, ``completion``, ``embedding``, ``task``..."""
    status: int
    """The HTTP status the caller got (rejected and failed requests included)."""
    time: datetime
    key_id: str | None = None
    key_prefix: str | None = None
    model: str = ""
    digest: str = ""
    prompt_tokens: int = 0
    completion_tokens: int = 0
    latency_ms: int = 0

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


UsageGroup = Literal["tenant", "model", "day", "key"]
USAGE_GROUPS: tuple[str, ...] = get_args(UsageGroup)


@dataclass(frozen=True)
class UsageSummary:
    """Usage summed over a group (the group's keys are set, the others are None)."""

    requests: int
    prompt_tokens: int
    completion_tokens: int
    errors: int
    tenant: str | None = None
    model: str | None = None
    day: str | None = None
    key: str | None = None


@dataclass(frozen=True)
class AuditEvent:
    time: datetime
    actor: str
    action: str
    target: str
    detail: dict[str, Any] = field(default_factory=dict)
    tenant: str = ""
    """The tenant the actor acted in (for filtering; admins see all)."""


def plan_weight(plan: str) -> float:
    """The fair-share weight of a plan. Raises InvalidRequest for an unknown plan."""
    try:
        return PLAN_WEIGHTS[plan]
    except KeyError:
        raise InvalidRequest(
            f"unknown plan {plan!r}; expected one of {', '.join(PLAN_WEIGHTS)}", param="plan"
        ) from None


def check_urgency(value: int) -> int:
    low, high = URGENCY_RANGE
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise InvalidRequest(f"max_urgency must be an integer from {low} to {high}", param="max_urgency")
    return value


def check_weight(weight: float) -> float:
    if isinstance(weight, bool) or not math.isfinite(weight) or not 0 < weight <= 1000:
        raise InvalidRequest("weight must be a number in (0, 1000]", param="weight")
    return float(weight)


def with_tenant(t: Tenant, **changes: Any) -> Tenant:
    return replace(t, **changes)
