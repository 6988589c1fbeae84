"""``client.security``: who am I, tenants, API keys, usage and the audit log.

The same calls on :class:`~llmos.sdk.Client` (returning values) and
:class:`~llmos.sdk.AsyncClient` (returning awaitables)::

    key = client.security.keys.create(tenant="acme", scopes=["inference"], models=["smollm2:*"])
    print(key.key)          # the secret, shown this once
    client.security.keys.revoke(key.id)
    client.security.usage(group_by=["tenant", "day"])
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import TYPE_CHECKING, Any, Generic, TypeVar

if TYPE_CHECKING:
    from llmos.sdk.async_client import AsyncClient
    from llmos.sdk.client import Client

T = TypeVar("T")


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


@dataclass(frozen=True)
class _Call(Generic[T]):
    """One HTTP call and how to read its answer; run by the sync or the async resource."""

    method: str
    path: str
    parse: Callable[[Any], T]
    kwargs: dict[str, Any] = field(default_factory=dict)


def _clean(d: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in d.items() if v is not None}


def _data(parse: Callable[[Mapping[str, Any]], T]) -> Callable[[Any], list[T]]:
    return lambda body: [parse(x) for x in body["data"]]


class _Calls:
    """The security API's calls, shared by the sync and async clients."""

    @staticmethod
    def whoami() -> _Call[WhoAmI]:
        return _Call("GET", "/api/whoami", WhoAmI.from_json)

    @staticmethod
    def tenants_list() -> _Call[list[Tenant]]:
        return _Call("GET", "/api/tenants", _data(Tenant.from_json))

    @staticmethod
    def tenants_get(name: str) -> _Call[Tenant]:
        return _Call("GET", f"/api/tenants/{name}", Tenant.from_json)

    @staticmethod
    def tenants_create(
        name: str,
        plan: str | None,
        weight: float | None,
        limits: Mapping[str, Any] | None,
        store_prompts: bool,
        max_urgency: int | None,
    ) -> _Call[Tenant]:
        body = _clean(
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
        return _Call("POST", "/api/tenants", Tenant.from_json, {"json": body})

    @staticmethod
    def tenants_update(
        name: str,
        plan: str | None,
        weight: float | None,
        limits: Mapping[str, Any] | None,
        store_prompts: bool | None,
        max_urgency: int | None,
    ) -> _Call[Tenant]:
        body = _clean(
            {"plan": plan, "weight": weight, "store_prompts": store_prompts, "max_urgency": max_urgency}
        )
        if limits is not None:
            body["limits"] = dict(limits)  # a None value inside removes that limit
        return _Call("PATCH", f"/api/tenants/{name}", Tenant.from_json, {"json": body})

    @staticmethod
    def keys_list(tenant: str | None) -> _Call[list[ApiKey]]:
        return _Call("GET", "/api/keys", _data(ApiKey.from_json), {"params": _clean({"tenant": tenant})})

    @staticmethod
    def keys_get(key_id: str) -> _Call[ApiKey]:
        return _Call("GET", f"/api/keys/{key_id}", ApiKey.from_json)

    @staticmethod
    def keys_create(
        tenant: str | None,
        name: str,
        scopes: Iterable[str] | None,
        models: Iterable[str] | None,
        expires_in: int | None,
        limits: Mapping[str, Any] | None,
        admin: bool,
    ) -> _Call[ApiKey]:
        body = _clean(
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
        return _Call("POST", "/api/keys", ApiKey.from_json, {"json": body})

    @staticmethod
    def keys_update(key_id: str, name: str | None, limits: Mapping[str, Any] | None) -> _Call[ApiKey]:
        body: dict[str, Any] = _clean({"name": name})
        if limits is not None:
            body["limits"] = dict(limits)  # a None value inside removes that limit
        return _Call("PATCH", f"/api/keys/{key_id}", ApiKey.from_json, {"json": body})

    @staticmethod
    def keys_revoke(key_id: str) -> _Call[ApiKey]:
        return _Call("DELETE", f"/api/keys/{key_id}", ApiKey.from_json)

    @staticmethod
    def usage(
        group_by: Iterable[str], tenant: str | None, model: str | None, since: date | None, until: date | None
    ) -> _Call[list[UsageRow]]:
        params = _clean(
            {
                "group_by": ",".join(group_by),
                "tenant": tenant,
                "model": model,
                "since": since.isoformat() if since else None,
                "until": until.isoformat() if until else None,
            }
        )
        return _Call("GET", "/api/usage", _data(UsageRow.from_json), {"params": params})

    @staticmethod
    def audit(limit: int, action: str | None, tenant: str | None) -> _Call[list[AuditEvent]]:
        params = _clean({"limit": limit, "action": action, "tenant": tenant})
        return _Call("GET", "/api/audit", _data(AuditEvent.from_json), {"params": params})


# ---- synchronous ---------------------------------------------------------------------------


class Security:
    """``client.security`` on :class:`~llmos.sdk.Client`."""

    def __init__(self, client: Client) -> None:
        self._client = client
        self.tenants = Tenants(self)
        self.keys = Keys(self)

    def _run(self, call: _Call[T]) -> T:
        return call.parse(self._client._request(call.method, call.path, **call.kwargs))

    def whoami(self) -> WhoAmI:
        """The caller: tenant, key prefix, scopes, and whether the server requires keys."""
        return self._run(_Calls.whoami())

    def usage(
        self,
        group_by: Iterable[str] = ("tenant",),
        *,
        tenant: str | None = None,
        model: str | None = None,
        since: date | None = None,
        until: date | None = None,
    ) -> list[UsageRow]:
        """Requests, tokens and errors summed by tenant, model, day and/or key (your own tenant's
        unless you are an admin)."""
        return self._run(_Calls.usage(group_by, tenant, model, since, until))

    def audit(
        self, *, limit: int = 100, action: str | None = None, tenant: str | None = None
    ) -> list[AuditEvent]:
        """The newest audit events first (admin)."""
        return self._run(_Calls.audit(limit, action, tenant))


class Tenants:
    def __init__(self, security: Security) -> None:
        self._s = security

    def list(self) -> list[Tenant]:
        return self._s._run(_Calls.tenants_list())

    def get(self, name: str) -> Tenant:
        return self._s._run(_Calls.tenants_get(name))

    def create(
        self,
        name: str,
        *,
        plan: str | None = None,
        weight: float | None = None,
        limits: Mapping[str, Any] | None = None,
        store_prompts: bool = False,
        max_urgency: int | None = None,
    ) -> Tenant:
        """A new tenant; its weight and urgency ceiling are its plan's unless given."""
        return self._s._run(_Calls.tenants_create(name, plan, weight, limits, store_prompts, max_urgency))

    def update(
        self,
        name: str,
        *,
        plan: str | None = None,
        weight: float | None = None,
        limits: Mapping[str, Any] | None = None,
        store_prompts: bool | None = None,
        max_urgency: int | None = None,
    ) -> Tenant:
        """Change a plan, weight, urgency ceiling, flags or limits (merged: a limit set to None
        is removed)."""
        return self._s._run(_Calls.tenants_update(name, plan, weight, limits, store_prompts, max_urgency))


class Keys:
    def __init__(self, security: Security) -> None:
        self._s = security

    def list(self, *, tenant: str | None = None) -> list[ApiKey]:
        return self._s._run(_Calls.keys_list(tenant))

    def get(self, key_id: str) -> ApiKey:
        return self._s._run(_Calls.keys_get(key_id))

    def create(
        self,
        *,
        tenant: str | None = None,
        name: str = "",
        scopes: Iterable[str] | None = None,
        models: Iterable[str] | None = None,
        expires_in: int | None = None,
        limits: Mapping[str, Any] | None = None,
        admin: bool = False,
    ) -> ApiKey:
        """A new key; its ``.key`` is the secret, shown this once."""
        return self._s._run(_Calls.keys_create(tenant, name, scopes, models, expires_in, limits, admin))

    def update(
        self, key_id: str, *, name: str | None = None, limits: Mapping[str, Any] | None = None
    ) -> ApiKey:
        """Rename a key or change its limits (admin; a limit set to None is removed)."""
        return self._s._run(_Calls.keys_update(key_id, name, limits))

    def revoke(self, key_id: str) -> ApiKey:
        return self._s._run(_Calls.keys_revoke(key_id))


# ---- asynchronous --------------------------------------------------------------------------


class AsyncSecurity:
    """``client.security`` on :class:`~llmos.sdk.AsyncClient` (the same calls, awaited)."""

    def __init__(self, client: AsyncClient) -> None:
        self._client = client
        self.tenants = AsyncTenants(self)
        self.keys = AsyncKeys(self)

    async def _run(self, call: _Call[T]) -> T:
        return call.parse(await self._client._request(call.method, call.path, **call.kwargs))

    async def whoami(self) -> WhoAmI:
        return await self._run(_Calls.whoami())

    async def usage(
        self,
        group_by: Iterable[str] = ("tenant",),
        *,
        tenant: str | None = None,
        model: str | None = None,
        since: date | None = None,
        until: date | None = None,
    ) -> list[UsageRow]:
        return await self._run(_Calls.usage(group_by, tenant, model, since, until))

    async def audit(
        self, *, limit: int = 100, action: str | None = None, tenant: str | None = None
    ) -> list[AuditEvent]:
        return await self._run(_Calls.audit(limit, action, tenant))


class AsyncTenants:
    def __init__(self, security: AsyncSecurity) -> None:
        self._s = security

    async def list(self) -> list[Tenant]:
        return await self._s._run(_Calls.tenants_list())

    async def get(self, name: str) -> Tenant:
        return await self._s._run(_Calls.tenants_get(name))

    async def create(
        self,
        name: str,
        *,
        plan: str | None = None,
        weight: float | None = None,
        limits: Mapping[str, Any] | None = None,
        store_prompts: bool = False,
        max_urgency: int | None = None,
    ) -> Tenant:
        return await self._s._run(
            _Calls.tenants_create(name, plan, weight, limits, store_prompts, max_urgency)
        )

    async def update(
        self,
        name: str,
        *,
        plan: str | None = None,
        weight: float | None = None,
        limits: Mapping[str, Any] | None = None,
        store_prompts: bool | None = None,
        max_urgency: int | None = None,
    ) -> Tenant:
        return await self._s._run(
            _Calls.tenants_update(name, plan, weight, limits, store_prompts, max_urgency)
        )


class AsyncKeys:
    def __init__(self, security: AsyncSecurity) -> None:
        self._s = security

    async def list(self, *, tenant: str | None = None) -> list[ApiKey]:
        return await self._s._run(_Calls.keys_list(tenant))

    async def get(self, key_id: str) -> ApiKey:
        return await self._s._run(_Calls.keys_get(key_id))

    async def create(
        self,
        *,
        tenant: str | None = None,
        name: str = "",
        scopes: Iterable[str] | None = None,
        models: Iterable[str] | None = None,
        expires_in: int | None = None,
        limits: Mapping[str, Any] | None = None,
        admin: bool = False,
    ) -> ApiKey:
        return await self._s._run(_Calls.keys_create(tenant, name, scopes, models, expires_in, limits, admin))

    async def update(
        self, key_id: str, *, name: str | None = None, limits: Mapping[str, Any] | None = None
    ) -> ApiKey:
        return await self._s._run(_Calls.keys_update(key_id, name, limits))

    async def revoke(self, key_id: str) -> ApiKey:
        return await self._s._run(_Calls.keys_revoke(key_id))
