"""The security repository: tenants, API keys (hashes), usage rows and audit events.

Every method is one transaction and returns domain values from :mod:`llmos.domain.tenancy`.
"""

from __future__ import annotations

import builtins
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import sqlalchemy.exc
from sqlalchemy import case, func, select, update

from llmos.domain.tenancy import (
    ApiKey,
    AuditEvent,
    Quota,
    StoredKey,
    Tenant,
    UsageRecord,
    UsageSummary,
)
from llmos.errors import Conflict
from llmos.storage.db import Database
from llmos.storage.limits import UsageQuery, usage_tokens
from llmos.storage.rows_security import ApiKeyRow, AuditRow, TenantRow, UsageRow


def _utc(value: datetime | None) -> datetime | None:
    # SQLite hands back naive datetimes; everything stored is UTC.
    if value is None:
        return None
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def _tenant(row: TenantRow) -> Tenant:
    return Tenant(
        name=row.name,
        plan=row.plan,
        weight=row.weight,
        limits=Quota.from_json(row.limits),
        store_prompts=row.store_prompts,
        created_at=_utc(row.created_at),
        max_urgency=row.max_urgency,
    )


def _key(row: ApiKeyRow) -> ApiKey:
    return ApiKey(
        id=row.id,
        prefix=row.prefix,
        tenant=row.tenant,
        name=row.name,
        scopes=tuple(row.scopes or ()),
        models=tuple(row.models or ()),
        limits=Quota.from_json(row.limits),
        created_at=_utc(row.created_at) or datetime.now(UTC),
        expires_at=_utc(row.expires_at),
        revoked_at=_utc(row.revoked_at),
        last_used_at=_utc(row.last_used_at),
        created_by=row.created_by,
        parent_id=row.parent_id,
    )


class SecurityRepository:
    """Tenants, keys, usage and audit on one database."""

    def __init__(self, db: Database) -> None:
        self.db = db

    # ---- tenants -------------------------------------------------------------------------

    def get_tenant(self, name: str) -> Tenant | None:
        with self.db.session() as s:
            row = s.get(TenantRow, name)
            return _tenant(row) if row is not None else None

    def list_tenants(self) -> builtins.list[Tenant]:
        with self.db.session() as s:
            return [_tenant(r) for r in s.scalars(select(TenantRow).order_by(TenantRow.name))]

    def add_tenant(self, t: Tenant) -> Tenant:
        """Insert a tenant. Raises Conflict if the name is taken."""
        created = t.created_at or datetime.now(UTC)
        try:
            with self.db.session() as s:
                if s.get(TenantRow, t.name) is not None:
                    raise Conflict(f"tenant {t.name!r} exists", param="name")
                s.add(
                    TenantRow(
                        name=t.name,
                        plan=t.plan,
                        weight=t.weight,
                        limits=t.limits.to_json(),
                        store_prompts=t.store_prompts,
                        created_at=created,
                        max_urgency=t.max_urgency,
                    )
                )
        except sqlalchemy.exc.IntegrityError:
            raise Conflict(f"tenant {t.name!r} exists", param="name") from None
        return replace(t, created_at=created)

    def save_tenant(self, t: Tenant) -> None:
        """Overwrite a tenant's plan, weight, limits and flags (it must exist)."""
        with self.db.session() as s:
            s.execute(
                update(TenantRow)
                .where(TenantRow.name == t.name)
                .values(
                    plan=t.plan,
                    weight=t.weight,
                    limits=t.limits.to_json(),
                    store_prompts=t.store_prompts,
                    max_urgency=t.max_urgency,
                )
            )

    # ---- keys ----------------------------------------------------------------------------

    def add_key(self, stored: StoredKey) -> None:
        k = stored.key
        with self.db.session() as s:
            s.add(
                ApiKeyRow(
                    id=k.id,
                    prefix=k.prefix,
                    hash=stored.hash,
                    tenant=k.tenant,
                    name=k.name,
                    scopes=list(k.scopes),
                    models=list(k.models),
                    limits=k.limits.to_json(),
                    created_at=k.created_at,
                    created_by=k.created_by,
                    expires_at=k.expires_at,
                    parent_id=k.parent_id,
                )
            )

    def keys_with_prefix(self, prefix: str) -> builtins.list[StoredKey]:
        with self.db.session() as s:
            rows = s.scalars(select(ApiKeyRow).where(ApiKeyRow.prefix == prefix))
            return [StoredKey(key=_key(r), hash=r.hash) for r in rows]

    def get_key(self, key_id: str) -> ApiKey | None:
        with self.db.session() as s:
            row = s.get(ApiKeyRow, key_id)
            return _key(row) if row is not None else None

    def list_keys(self, tenant: str | None = None) -> builtins.list[ApiKey]:
        with self.db.session() as s:
            q = select(ApiKeyRow).order_by(ApiKeyRow.created_at, ApiKeyRow.id)
            if tenant is not None:
                q = q.where(ApiKeyRow.tenant == tenant)
            return [_key(r) for r in s.scalars(q)]

    def key_family(self, key_id: str) -> builtins.list[str]:
        """``key_id`` and every key made from it, directly or through other keys."""
        with self.db.session() as s:
            tenant = s.scalar(select(ApiKeyRow.tenant).where(ApiKeyRow.id == key_id))
            if tenant is None:
                return []
            children: dict[str, builtins.list[str]] = {}
            rows = s.execute(
                select(ApiKeyRow.id, ApiKeyRow.parent_id).where(
                    ApiKeyRow.tenant == tenant, ApiKeyRow.parent_id.is_not(None)
                )
            )
            for child, parent in rows:
                children.setdefault(str(parent), []).append(str(child))
        family, todo = [key_id], [key_id]
        while todo:
            for child in children.get(todo.pop(), ()):
                if child not in family:
                    family.append(child)
                    todo.append(child)
        return family

    def revoke_keys(self, key_ids: Sequence[str], at: datetime) -> None:
        """Revoke every key of ``key_ids`` not revoked yet, in one transaction."""
        with self.db.session() as s:
            s.execute(
                update(ApiKeyRow)
                .where(ApiKeyRow.id.in_(list(key_ids)), ApiKeyRow.revoked_at.is_(None))
                .values(revoked_at=at)
            )

    def update_key(self, key_id: str, *, name: str, limits: Quota) -> None:
        with self.db.session() as s:
            s.execute(
                update(ApiKeyRow).where(ApiKeyRow.id == key_id).values(name=name, limits=limits.to_json())
            )

    def touch_key(self, key_id: str, at: datetime) -> None:
        with self.db.session() as s:
            s.execute(update(ApiKeyRow).where(ApiKeyRow.id == key_id).values(last_used_at=at))

    # ---- usage ---------------------------------------------------------------------------

    def add_usage(self, u: UsageRecord) -> None:
        with self.db.session() as s:
            s.add(
                UsageRow(
                    request_id=u.request_id[:128],
                    tenant=u.tenant[:64],
                    key_id=u.key_id,
                    key_prefix=u.key_prefix,
                    operation=u.operation[:40],
                    model=u.model[:330],
                    digest=u.digest[:64],
                    prompt_tokens=u.prompt_tokens,
                    completion_tokens=u.completion_tokens,
                    latency_ms=u.latency_ms,
                    status=u.status,
                    created_at=u.time,
                    day=u.time.astimezone(UTC).strftime("%Y-%m-%d"),
                )
            )

    def tokens_since(
        self, since: datetime, *, tenant: str | None = None, key_ids: Sequence[str] | None = None
    ) -> int:
        """Prompt plus completion tokens recorded since ``since`` for a tenant and/or some keys."""
        with self.db.session() as s:
            return usage_tokens(s, UsageQuery(since, tenant, None if key_ids is None else tuple(key_ids)))

    def summarize(
        self,
        group_by: Sequence[str],
        *,
        tenant: str | None = None,
        model: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> builtins.list[UsageSummary]:
        """Usage summed per group (``tenant``, ``model``, ``day``, ``key``), oldest day first."""
        columns = {
            "tenant": UsageRow.tenant,
            "model": UsageRow.model,
            "day": UsageRow.day,
            "key": UsageRow.key_prefix,
        }
        keys = [columns[g] for g in group_by]
        errors = func.sum(case((UsageRow.status >= 400, 1), else_=0))
        q = select(
            *keys,
            func.count(UsageRow.id),
            func.coalesce(func.sum(UsageRow.prompt_tokens), 0),
            func.coalesce(func.sum(UsageRow.completion_tokens), 0),
            func.coalesce(errors, 0),
        )
        if tenant is not None:
            q = q.where(UsageRow.tenant == tenant)
        if model is not None:
            q = q.where(UsageRow.model == model)
        if since is not None:
            q = q.where(UsageRow.created_at >= since)
        if until is not None:
            q = q.where(UsageRow.created_at < until)
        if keys:
            q = q.group_by(*keys).order_by(*keys)
        out = []
        with self.db.session() as s:
            for row in s.execute(q):
                cells: tuple[Any, ...] = tuple(row)
                values = dict(zip(group_by, cells[: len(keys)], strict=True))
                requests, prompt, completion, errs = cells[len(keys) :]
                if not keys and not requests:
                    continue
                out.append(
                    UsageSummary(
                        requests=int(requests),
                        prompt_tokens=int(prompt),
                        completion_tokens=int(completion),
                        errors=int(errs),
                        **{k: (str(v) if v is not None else None) for k, v in values.items()},
                    )
                )
        return out

    def list_usage(
        self, *, tenant: str | None = None, limit: int = 100, before_id: int | None = None
    ) -> builtins.list[tuple[int, UsageRecord]]:
        """The newest usage rows first (with their ids, for paging)."""
        with self.db.session() as s:
            q = select(UsageRow).order_by(UsageRow.id.desc()).limit(limit)
            if tenant is not None:
                q = q.where(UsageRow.tenant == tenant)
            if before_id is not None:
                q = q.where(UsageRow.id < before_id)
            return [(r.id, _usage(r)) for r in s.scalars(q)]

    # ---- audit ---------------------------------------------------------------------------

    def add_audit(self, e: AuditEvent) -> None:
        with self.db.session() as s:
            s.add(
                AuditRow(
                    created_at=e.time,
                    actor=e.actor[:100],
                    tenant=e.tenant[:64],
                    action=e.action[:64],
                    target=e.target[:400],
                    detail=dict(e.detail),
                )
            )

    def list_audit(
        self,
        *,
        limit: int = 100,
        action: str | None = None,
        tenant: str | None = None,
        since: datetime | None = None,
    ) -> builtins.list[AuditEvent]:
        """The newest events first."""
        with self.db.session() as s:
            q = select(AuditRow).order_by(AuditRow.id.desc()).limit(limit)
            if action is not None:
                q = q.where(AuditRow.action == action)
            if tenant is not None:
                q = q.where(AuditRow.tenant == tenant)
            if since is not None:
                q = q.where(AuditRow.created_at >= since)
            return [_audit(r) for r in s.scalars(q)]


def _usage(r: UsageRow) -> UsageRecord:
    return UsageRecord(
        request_id=r.request_id,
        tenant=r.tenant,
        operation=r.operation,
        status=r.status,
        time=_utc(r.created_at) or datetime.now(UTC),
        key_id=r.key_id,
        key_prefix=r.key_prefix,
        model=r.model,
        digest=r.digest,
        prompt_tokens=r.prompt_tokens,
        completion_tokens=r.completion_tokens,
        latency_ms=r.latency_ms,
    )


def _audit(r: AuditRow) -> AuditEvent:
    return AuditEvent(
        time=_utc(r.created_at) or datetime.now(UTC),
        actor=r.actor,
        action=r.action,
        target=r.target,
        detail=dict(r.detail or {}),
        tenant=r.tenant,
    )
