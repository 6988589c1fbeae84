"""Shapes of the security API: whoami, tenants, keys, usage, audit."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

_MAX = 10**15


class LimitsIn(BaseModel):
    """Limits to set; a field sent as null removes that limit, a field left out keeps it."""

    model_config = ConfigDict(extra="forbid")

    requests_per_minute: int | None = Field(default=None, ge=1, le=_MAX)
    tokens_per_minute: int | None = Field(default=None, ge=1, le=_MAX)
    concurrent_requests: int | None = Field(default=None, ge=1, le=1_000_000)
    max_tokens_per_request: int | None = Field(default=None, ge=1, le=_MAX)
    token_budget: int | None = Field(default=None, ge=1, le=_MAX)
    budget_period: Literal["day", "week", "month"] | None = None

    def changes(self) -> dict[str, Any]:
        return self.model_dump(exclude_unset=True)


class LimitsOut(BaseModel):
    requests_per_minute: int | None = None
    tokens_per_minute: int | None = None
    concurrent_requests: int | None = None
    max_tokens_per_request: int | None = None
    token_budget: int | None = None
    budget_period: str = "month"


class WhoAmI(BaseModel):
    tenant: str
    key_prefix: str | None
    scopes: list[str]
    is_admin: bool
    auth: Literal["on", "off"]
    models: list[str] = Field(default_factory=lambda: ["*"])


class TenantCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
    plan: str | None = Field(default=None, max_length=32)
    weight: float | None = Field(default=None, gt=0, le=1000)
    limits: LimitsIn | None = None
    store_prompts: bool = False
    max_urgency: int | None = Field(default=None, ge=0, le=9)
    """The highest urgency (0-9) the tenant's requests run at; default: its plan's."""


class TenantPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    plan: str | None = Field(default=None, max_length=32)
    weight: float | None = Field(default=None, gt=0, le=1000)
    limits: LimitsIn | None = None
    store_prompts: bool | None = None
    max_urgency: int | None = Field(default=None, ge=0, le=9)
    """The highest urgency (0-9) the tenant's requests run at; ``null``: back to its plan's."""


class TenantOut(BaseModel):
    name: str
    plan: str
    weight: float
    limits: LimitsOut
    store_prompts: bool
    created_at: datetime | None
    max_urgency: int
    """The highest urgency (0-9) its requests run at (its plan's unless set); higher asks are lowered."""


class TenantList(BaseModel):
    data: list[TenantOut]


class KeyCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    tenant: str | None = Field(default=None, min_length=1, max_length=64)
    name: str = Field(default="", max_length=200)
    scopes: list[str] | None = Field(default=None, max_length=16)
    models: list[str] | None = Field(default=None, min_length=1, max_length=64)
    expires_at: datetime | None = None
    expires_in: int | None = Field(default=None, ge=1, le=10 * 365 * 86400)
    """Seconds from now (the server's clock); an alternative to ``expires_at``."""
    limits: LimitsIn | None = None
    admin: bool = False


class KeyPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(default=None, max_length=200)
    limits: LimitsIn | None = None


class KeyOut(BaseModel):
    id: str
    prefix: str
    tenant: str
    name: str
    scopes: list[str]
    models: list[str]
    limits: LimitsOut
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None
    last_used_at: datetime | None
    parent: str | None = None
    """The id of the key that made this one (it bounds this key); None when an admin did."""


class KeyCreated(KeyOut):
    key: str
    """The secret: shown this once, never again."""


class KeyList(BaseModel):
    data: list[KeyOut]


class UsageGroupOut(BaseModel):
    tenant: str | None = None
    model: str | None = None
    day: str | None = None
    key: str | None = None
    requests: int
    prompt_tokens: int
    completion_tokens: int
    errors: int


class UsageResponse(BaseModel):
    data: list[UsageGroupOut]


class AuditOut(BaseModel):
    time: datetime
    actor: str
    action: str
    target: str
    detail: dict[str, Any]
    tenant: str


class AuditResponse(BaseModel):
    data: list[AuditOut]
