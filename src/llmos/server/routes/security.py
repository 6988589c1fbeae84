"""The security API under ``/api``: whoami, tenants, keys, usage and audit.

Tenants and audit are for admins; usage is a tenant's own (an admin sees all). Keys need
``keys:write``: a non-admin key manages itself and the keys made from it (bounded by it).
Another tenant's key, or one the caller does not manage, is a 404, never a 403. Handlers are plain functions: FastAPI runs them in
its thread pool, so their database work never blocks the event loop.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Annotated

from fastapi import APIRouter, Query

from llmos.domain.tenancy import ApiKey, AuditEvent, Quota, Tenant, UsageSummary
from llmos.errors import InvalidRequest, NotFound
from llmos.security.service import KEEP
from llmos.server.auth import PrincipalDep
from llmos.server.routes.deps import KernelDep
from llmos.server.schemas.common import ErrorResponse
from llmos.server.schemas.security import (
    AuditOut,
    AuditResponse,
    KeyCreate,
    KeyCreated,
    KeyList,
    KeyOut,
    KeyPatch,
    LimitsOut,
    TenantCreate,
    TenantList,
    TenantOut,
    TenantPatch,
    UsageGroupOut,
    UsageResponse,
    WhoAmI,
)

router = APIRouter(
    prefix="/api",
    tags=["security"],
    responses={
        400: {"model": ErrorResponse},
        401: {"model": ErrorResponse},
        403: {"model": ErrorResponse},
        404: {"model": ErrorResponse},
    },
)


def _limits(q: Quota) -> LimitsOut:
    return LimitsOut(**q.to_json())


def _tenant(t: Tenant) -> TenantOut:
    return TenantOut(
        name=t.name,
        plan=t.plan,
        weight=t.weight,
        limits=_limits(t.limits),
        store_prompts=t.store_prompts,
        created_at=t.created_at,
        max_urgency=t.urgency_ceiling,
    )


def _key(k: ApiKey) -> KeyOut:
    return KeyOut(
        id=k.id,
        prefix=k.prefix,
        tenant=k.tenant,
        name=k.name,
        scopes=list(k.scopes),
        models=list(k.models),
        limits=_limits(k.limits),
        created_at=k.created_at,
        expires_at=k.expires_at,
        revoked_at=k.revoked_at,
        last_used_at=k.last_used_at,
        parent=k.parent_id,
    )


def _usage(u: UsageSummary) -> UsageGroupOut:
    return UsageGroupOut(
        tenant=u.tenant,
        model=u.model,
        day=u.day,
        key=u.key,
        requests=u.requests,
        prompt_tokens=u.prompt_tokens,
        completion_tokens=u.completion_tokens,
        errors=u.errors,
    )


def _audit(e: AuditEvent) -> AuditOut:
    return AuditOut(
        time=e.time, actor=e.actor, action=e.action, target=e.target, detail=e.detail, tenant=e.tenant
    )


@router.get("/whoami", response_model=WhoAmI)
def whoami(principal: PrincipalDep, kernel: KernelDep) -> WhoAmI:
    return WhoAmI(
        tenant=principal.tenant,
        key_prefix=principal.key_prefix,
        scopes=sorted(principal.scopes),
        is_admin=principal.is_admin,
        auth="on" if kernel.security.auth_required else "off",
        models=list(principal.model_patterns),
    )


@router.get("/tenants", response_model=TenantList)
def list_tenants(principal: PrincipalDep, kernel: KernelDep) -> TenantList:
    return TenantList(data=[_tenant(t) for t in kernel.security.list_tenants(principal)])


@router.post("/tenants", response_model=TenantOut, status_code=201, responses={409: {"model": ErrorResponse}})
def create_tenant(body: TenantCreate, principal: PrincipalDep, kernel: KernelDep) -> TenantOut:
    t = kernel.security.create_tenant(
        principal,
        body.name,
        plan=body.plan,
        weight=body.weight,
        limits=body.limits.changes() if body.limits else None,
        store_prompts=body.store_prompts,
        max_urgency=body.max_urgency,
    )
    return _tenant(t)


@router.get("/tenants/{name}", response_model=TenantOut)
def show_tenant(name: str, principal: PrincipalDep, kernel: KernelDep) -> TenantOut:
    """A tenant: any for an admin, its own for anyone else (another is a 404)."""
    found = kernel.security.tenant(name) if (principal.is_admin or name == principal.tenant) else None
    if found is None:
        raise NotFound(f"tenant {name!r} not found")
    return _tenant(found)


@router.patch("/tenants/{name}", response_model=TenantOut)
def update_tenant(name: str, body: TenantPatch, principal: PrincipalDep, kernel: KernelDep) -> TenantOut:
    t = kernel.security.update_tenant(
        principal,
        name,
        plan=body.plan,
        weight=body.weight,
        limits=body.limits.changes() if body.limits is not None else None,
        store_prompts=body.store_prompts,
        max_urgency=body.max_urgency if "max_urgency" in body.model_fields_set else KEEP,
    )
    return _tenant(t)


@router.get("/keys", response_model=KeyList)
def list_keys(
    principal: PrincipalDep, kernel: KernelDep, tenant: Annotated[str | None, Query(max_length=64)] = None
) -> KeyList:
    return KeyList(data=[_key(k) for k in kernel.security.list_keys(principal, tenant)])


@router.post("/keys", response_model=KeyCreated, status_code=201)
def create_key(body: KeyCreate, principal: PrincipalDep, kernel: KernelDep) -> KeyCreated:
    """Make a key; the response carries the secret (``key``) this once."""
    security = kernel.security
    expires_at = body.expires_at
    if body.expires_in is not None:
        if expires_at is not None:
            raise InvalidRequest("give expires_at or expires_in, not both", param="expires_in")
        expires_at = security.now() + timedelta(seconds=body.expires_in)
    key, secret = security.create_key(
        principal,
        tenant=body.tenant,
        name=body.name,
        scopes=body.scopes,
        models=body.models,
        expires_at=expires_at,
        limits=body.limits.changes() if body.limits else None,
        admin=body.admin,
    )
    return KeyCreated(**_key(key).model_dump(), key=secret)


@router.get("/keys/{key_id}", response_model=KeyOut)
def show_key(key_id: str, principal: PrincipalDep, kernel: KernelDep) -> KeyOut:
    return _key(kernel.security.get_key(principal, key_id))


@router.patch("/keys/{key_id}", response_model=KeyOut)
def update_key(key_id: str, body: KeyPatch, principal: PrincipalDep, kernel: KernelDep) -> KeyOut:
    """Rename a key or change its limits (admin); limits merge, a ``null`` limit is removed."""
    limits = body.limits.changes() if body.limits is not None else None
    return _key(kernel.security.update_key(principal, key_id, name=body.name, limits=limits))


@router.delete("/keys/{key_id}", response_model=KeyOut)
def revoke_key(key_id: str, principal: PrincipalDep, kernel: KernelDep) -> KeyOut:
    """Revoke a key: its next request gets 401. Revoking twice is harmless."""
    return _key(kernel.security.revoke_key(principal, key_id))


@router.get("/usage", response_model=UsageResponse, response_model_exclude_none=True)
def usage(
    principal: PrincipalDep,
    kernel: KernelDep,
    group_by: Annotated[
        str, Query(max_length=64, description="tenant, model, day, key (comma list)")
    ] = "tenant",
    tenant: Annotated[str | None, Query(max_length=64)] = None,
    model: Annotated[str | None, Query(max_length=330)] = None,
    since: Annotated[date | None, Query(description="first day (UTC), inclusive")] = None,
    until: Annotated[date | None, Query(description="last day (UTC), inclusive")] = None,
) -> UsageResponse:
    groups = [g.strip() for g in group_by.split(",") if g.strip()]
    rows = kernel.security.usage(
        principal,
        groups,
        tenant=tenant,
        model=model,
        since=_day_start(since),
        until=_day_start(until, days=1),
    )
    return UsageResponse(data=[_usage(u) for u in rows])


@router.get("/audit", response_model=AuditResponse)
def audit(
    principal: PrincipalDep,
    kernel: KernelDep,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    action: Annotated[str | None, Query(max_length=64)] = None,
    tenant: Annotated[str | None, Query(max_length=64)] = None,
    since: Annotated[date | None, Query(description="first day (UTC), inclusive")] = None,
) -> AuditResponse:
    events = kernel.security.audit_events(
        principal, limit=limit, action=action, tenant=tenant, since=_day_start(since)
    )
    return AuditResponse(data=[_audit(e) for e in events])


def _day_start(d: date | None, *, days: int = 0) -> datetime | None:
    if d is None:
        return None
    try:
        return datetime.combine(d, time(), tzinfo=UTC) + timedelta(days=days)
    except OverflowError:
        raise InvalidRequest("date out of range", param="until") from None
