"""ORM rows of the security subsystem: tenants, API keys (hashes only), usage and audit."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Boolean, DateTime, Float, ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from llmos.storage.rows import Base

# SQLite only autoincrements an INTEGER PRIMARY KEY; PostgreSQL gets a 64-bit id.
BigId = BigInteger().with_variant(Integer(), "sqlite")


class TenantRow(Base):
    __tablename__ = "tenants"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    plan: Mapped[str] = mapped_column(String(32))
    weight: Mapped[float] = mapped_column(Float)
    limits: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    store_prompts: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    max_urgency: Mapped[int | None] = mapped_column(Integer, nullable=True)
    """The highest urgency the tenant's requests run at; None: its plan's ceiling."""


class ApiKeyRow(Base):
    """A key: its SHA-256 and display prefix, never the secret."""

    __tablename__ = "api_keys"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    prefix: Mapped[str] = mapped_column(String(40), index=True)
    hash: Mapped[str] = mapped_column(String(64), unique=True)
    tenant: Mapped[str] = mapped_column(ForeignKey("tenants.name", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(200), default="")
    scopes: Mapped[list[str]] = mapped_column(JSON, default=list)
    models: Mapped[list[str]] = mapped_column(JSON, default=list)
    limits: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    created_by: Mapped[str] = mapped_column(String(100), default="")
    expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    last_used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    parent_id: Mapped[str | None] = mapped_column(String(40), nullable=True, index=True)
    """The key that made this one (None for keys an admin made): it bounds this key, and revoking
    it revokes this one."""


class UsageRow(Base):
    """One request: who, which model, how many tokens, how long, and the status it got."""

    __tablename__ = "usage"
    __table_args__ = (
        Index("ix_usage_tenant_created_at", "tenant", "created_at"),
        Index("ix_usage_key_id_created_at", "key_id", "created_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    request_id: Mapped[str] = mapped_column(String(128), index=True)
    tenant: Mapped[str] = mapped_column(String(64))
    key_id: Mapped[str | None] = mapped_column(String(40), nullable=True)
    key_prefix: Mapped[str | None] = mapped_column(String(40), nullable=True)
    operation: Mapped[str] = mapped_column(String(40))
    model: Mapped[str] = mapped_column(String(330), default="")
    digest: Mapped[str] = mapped_column(String(64), default="")
    prompt_tokens: Mapped[int] = mapped_column(Integer, default=0)
    completion_tokens: Mapped[int] = mapped_column(Integer, default=0)
    latency_ms: Mapped[int] = mapped_column(Integer, default=0)
    status: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    day: Mapped[str] = mapped_column(String(10), index=True)
    """``YYYY-MM-DD`` (UTC), so grouping by day is the same plain GROUP BY on every database."""


class AuditRow(Base):
    __tablename__ = "audit_events"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    actor: Mapped[str] = mapped_column(String(100))
    tenant: Mapped[str] = mapped_column(String(64), default="")
    action: Mapped[str] = mapped_column(String(64), index=True)
    target: Mapped[str] = mapped_column(String(400), default="")
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
