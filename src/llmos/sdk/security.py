"""``client.security``: who am I, tenants, API keys, usage and the audit log: the result types
and the calls behind both clients' ``security`` resource (run as ``_core`` says)::

    key = client.security.keys.create(tenant="acme", scopes=["inference"], models=["smollm2:*"])
    print(key.key)          # the secret, shown this once
    client.security.keys.revoke(key.id)
    client.security.usage(group_by=["tenant", "day"])
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from llmos.sdk._core import Call, clean, rows, segment


@dataclass(frozen=True)
class WhoAmI:
    tenant: str
    key_prefix: str | None
    scopes: tuple[str, ...]
    is_admin: bool
    auth: str
    models: tuple[str, ...] = ("*",)

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> WhoAmI:
        return cls(
            tenant=str(d["tenant"]),
            key_prefix=d.get("key_prefix"),
            scopes=tuple(d.get("scopes") or ()),
            is_admin=bool(d.get("is_admin")),
            auth=str(d.get("auth", "")),
            models=tuple(d.get("models") or ("*",)),
        )


@dataclass(frozen=True)
class Tenant:
    name: str
    plan: str
    weight: float
    limits: dict[str, Any] = field(default_factory=dict)
    store_prompts: bool = False
    created_at: str | None = None
    max_urgency: int | None = None
    """The highest urgency (0-9) the tenant's requests run at; higher asks are lowered to it."""

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> Tenant:
        urgency = d.get("max_urgency")
        return cls(
            name=str(d["name"]),
            plan=str(d.get("plan", "")),
            weight=float(d.get("weight", 1.0)),
            limits=dict(d.get("limits") or {}),
            store_prompts=bool(d.get("store_prompts", False)),
            created_at=d.get("created_at"),
            max_urgency=int(urgency) if urgency is not None else None,
        )


@dataclass(frozen=True)
class ApiKey:
    id: str
    prefix: str
    tenant: str
    name: str = ""
    scopes: tuple[str, ...] = ()
    models: tuple[str, ...] = ()
    limits: dict[str, Any] = field(default_factory=dict)
    created_at: str | None = None
    expires_at: str | None = None
    revoked_at: str | None = None
    last_used_at: str | None = None
    key: str | None = field(default=None, repr=False)
    """The secret: present only in the answer to ``create`` (shown once)."""
    parent: str | None = None
    """The id of the key that made this one (it bounds this key); None when an admin did."""

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> ApiKey:
        return cls(
            id=str(d["id"]),
            prefix=str(d.get("prefix", "")),
            tenant=str(d.get("tenant", "")),
            name=str(d.get("name", "")),
            scopes=tuple(d.get("scopes") or ()),
            models=tuple(d.get("models") or ()),
            limits=dict(d.get("limits") or {}),
            created_at=d.get("created_at"),
            expires_at=d.get("expires_at"),
            revoked_at=d.get("revoked_at"),
            last_used_at=d.get("last_used_at"),
            key=d.get("key"),
            parent=d.get("parent"),
        )


@dataclass(frozen=True)
class UsageRow:
    requests: int
    prompt_tokens: int
    completion_tokens: int
    errors: int
    tenant: str | None = None
    model: str | None = None
    day: str | None = None
    key: str | None = None

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> UsageRow:
        return cls(
            requests=int(d.get("requests", 0)),
            prompt_tokens=int(d.get("prompt_tokens", 0)),
            completion_tokens=int(d.get("completion_tokens", 0)),
            errors=int(d.get("errors", 0)),
            tenant=d.get("tenant"),
            model=d.get("model"),
            day=d.get("day"),
            key=d.get("key"),
        )


@dataclass(frozen=True)
class AuditEvent:
    time: str
    actor: str
    action: str
    target: str
    detail: dict[str, Any] = field(default_factory=dict)
    tenant: str = ""

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> AuditEvent:
        return cls(
            time=str(d.get("time", "")),
            actor=str(d.get("actor", "")),
            action=str(d.get("action", "")),
            target=str(d.get("target", "")),
            detail=dict(d.get("detail") or {}),
            tenant=str(d.get("tenant", "")),
        )


def whoami() -> Call[WhoAmI]:
    return Call("GET", "/api/whoami", WhoAmI.from_json)


def tenants_list() -> Call[list[Tenant]]:
    return Call("GET", "/api/tenants", rows(Tenant.from_json))


def tenants_get(name: str) -> Call[Tenant]:
    return Call("GET", f"/api/tenants/{segment(name)}", Tenant.from_json)


def tenants_create(
    name: str,
    plan: str | None,
    weight: float | None,
    limits: Mapping[str, Any] | None,
    store_prompts: bool,
    max_urgency: int | None,
) -> Call[Tenant]:
    body = clean(
        {
            "name": name,
            "plan": plan,
            "weight": weight,
            "store_prompts": store_prompts,
            "max_urgency": max_urgency,
        }
    )
    if limits is not None:
        body["limits"] = dict(limits)
    return Call("POST", "/api/tenants", Tenant.from_json, json=body)


def tenants_update(
    name: str,
    plan: str | None,
    weight: float | None,
    limits: Mapping[str, Any] | None,
    store_prompts: bool | None,
    max_urgency: int | None,
) -> Call[Tenant]:
    body = clean({"plan": plan, "weight": weight, "store_prompts": store_prompts, "max_urgency": max_urgency})
    if limits is not None:
        body["limits"] = dict(limits)  # a None value inside removes that limit
    return Call("PATCH", f"/api/tenants/{segment(name)}", Tenant.from_json, json=body)


def keys_list(tenant: str | None) -> Call[list[ApiKey]]:
    return Call("GET", "/api/keys", rows(ApiKey.from_json), params=clean({"tenant": tenant}))


def keys_get(key_id: str) -> Call[ApiKey]:
    return Call("GET", f"/api/keys/{segment(key_id)}", ApiKey.from_json)


def keys_create(
    tenant: str | None,
    name: str,
    scopes: Iterable[str] | None,
    models: Iterable[str] | None,
    expires_in: int | None,
    limits: Mapping[str, Any] | None,
    admin: bool,
) -> Call[ApiKey]:
    body = clean(
        {
            "tenant": tenant,
            "name": name,
            "scopes": list(scopes) if scopes is not None else None,
            "models": list(models) if models is not None else None,
            "expires_in": expires_in,
            "limits": dict(limits) if limits is not None else None,
            "admin": admin,
        }
    )
    return Call("POST", "/api/keys", ApiKey.from_json, json=body)


def keys_update(key_id: str, name: str | None, limits: Mapping[str, Any] | None) -> Call[ApiKey]:
    body: dict[str, Any] = clean({"name": name})
    if limits is not None:
        body["limits"] = dict(limits)  # a None value inside removes that limit
    return Call("PATCH", f"/api/keys/{segment(key_id)}", ApiKey.from_json, json=body)


def keys_revoke(key_id: str) -> Call[ApiKey]:
    return Call("DELETE", f"/api/keys/{segment(key_id)}", ApiKey.from_json)


def usage(
    group_by: Iterable[str], tenant: str | None, model: str | None, since: date | None, until: date | None
) -> Call[list[UsageRow]]:
    params = clean(
        {
            "group_by": ",".join(group_by),
            "tenant": tenant,
            "model": model,
            "since": since.isoformat() if since else None,
            "until": until.isoformat() if until else None,
        }
    )
    return Call("GET", "/api/usage", rows(UsageRow.from_json), params=params)


def audit(limit: int, action: str | None, tenant: str | None) -> Call[list[AuditEvent]]:
    params = clean({"limit": limit, "action": action, "tenant": tenant})
    return Call("GET", "/api/audit", rows(AuditEvent.from_json), params=params)
