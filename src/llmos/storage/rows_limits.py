"""ORM rows of the shared rate windows and budget reservations (several front-ends, one database)."""

from __future__ import annotations

from sqlalchemy import Float, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from llmos.storage.rows import Base
from llmos.storage.rows_security import BigId


class LimitSubjectRow(Base):
    """One limited subject (a tenant or a key). Admissions and releases update its row first:
    the row lock (PostgreSQL) or the write lock (SQLite) serializes them across processes."""

    __tablename__ = "limit_subjects"

    kind: Mapped[str] = mapped_column(String(16), primary_key=True)
    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    version: Mapped[int] = mapped_column(Integer, default=0)


class LimitEventRow(Base):
    """A request admitted (``requests`` = 1) or tokens charged, at ``at`` (epoch seconds), for
    the per-minute windows; rows older than the window are deleted as admissions pass."""

    __tablename__ = "limit_events"
    __table_args__ = (Index("ix_limit_events_subject_at", "kind", "name", "at"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(16))
    name: Mapped[str] = mapped_column(String(64))
    at: Mapped[float] = mapped_column(Float)
    requests: Mapped[int] = mapped_column(Integer, default=0)
    tokens: Mapped[int] = mapped_column(Integer, default=0)


class LimitHoldRow(Base):
    """A running request's hold on one subject: a concurrency slot and its budget reservation.
    ``expires_at`` bounds how long a front-end that died holds them."""

    __tablename__ = "limit_holds"
    __table_args__ = (Index("ix_limit_holds_subject", "kind", "name"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16), primary_key=True)
    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    reserved: Mapped[int] = mapped_column(Integer, default=0)
    expires_at: Mapped[float] = mapped_column(Float)
