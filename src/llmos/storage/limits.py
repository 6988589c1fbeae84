"""Rate windows and budget reservations in the database, so every front-end sees the same ones.

One admission is one transaction: it first updates each subject's ``limit_subjects`` row (in a
fixed order, so two admissions never wait on each other in a circle), which takes a row lock on
PostgreSQL and the write lock on SQLite; so admissions and releases of one subject are serialized
across processes. Under that lock it drops window events older than the window and expired
holds, reads each subject's :class:`WindowState` (requests and tokens in the window, holds,
reservations, then the tokens its budget already counts), lets the caller's ``check`` refuse
(nothing is written then), and records the request and one hold per subject.

Holds are read before the usage rows: a request that ends writes its usage row, then (in a later
transaction, under the same lock) deletes its hold, so an admission that no longer sees the hold
sees the usage row; one that sees both counts the tokens twice, which can only refuse early.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from llmos.storage.db import Database
from llmos.storage.rows_limits import LimitEventRow, LimitHoldRow, LimitSubjectRow
from llmos.storage.rows_security import UsageRow

SubjectKey = tuple[str, str]
"""``(kind, name)``: ``("tenant", name)`` or ``("key", id)``."""


@dataclass(frozen=True)
class UsageQuery:
    """The usage rows a budget counts: since the period began, for a tenant and/or some keys."""

    since: datetime
    tenant: str | None = None
    key_ids: tuple[str, ...] | None = None


@dataclass(frozen=True)
class WindowState:
    """One subject as every front-end sees it, at admission."""

    requests: tuple[float, ...]
    """When the requests in the window were admitted (epoch seconds, oldest first)."""
    tokens: tuple[tuple[float, int], ...]
    """Tokens charged in the window: (when, how many), oldest first."""
    in_flight: int
    reserved: int
    """Tokens the subject's running requests hold against its budget."""
    used: int | None = None
    """Tokens its budget period already counts (None: no budget asked for)."""

    @property
    def token_sum(self) -> int:
        return sum(n for _, n in self.tokens)


def usage_tokens(s: Session, q: UsageQuery) -> int:
    """Prompt plus completion tokens of the usage rows ``q`` selects."""
    stmt = select(func.coalesce(func.sum(UsageRow.prompt_tokens + UsageRow.completion_tokens), 0)).where(
        UsageRow.created_at >= q.since
    )
    if q.tenant is not None:
        stmt = stmt.where(UsageRow.tenant == q.tenant)
    if q.key_ids is not None:
        stmt = stmt.where(UsageRow.key_id.in_(list(q.key_ids)))
    return int(s.scalar(stmt) or 0)


class LimitsRepository:
    """Shared windows and holds on one database (SQLite or PostgreSQL, one code path)."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def admit(
        self,
        subjects: Sequence[SubjectKey],
        *,
        hold_id: str,
        now: float,
        window_s: float,
        lease_s: float,
        reserve: Mapping[SubjectKey, int],
        usage: Mapping[SubjectKey, UsageQuery],
        check: Callable[[Mapping[SubjectKey, WindowState]], None],
    ) -> None:
        """Count one request for every subject and hold ``reserve[s]`` tokens of each budgeted
        one, unless ``check`` raises on the subjects' states (then nothing is written)."""
        keys = list(dict.fromkeys(subjects))
        with self.db.session() as s:
            self._lock(s, keys)
            for kind, name in keys:
                s.execute(
                    delete(LimitEventRow).where(
                        LimitEventRow.kind == kind,
                        LimitEventRow.name == name,
                        LimitEventRow.at <= now - window_s,
                    )
                )
                s.execute(
                    delete(LimitHoldRow).where(
                        LimitHoldRow.kind == kind, LimitHoldRow.name == name, LimitHoldRow.expires_at <= now
                    )
                )
            states = {k: self._state(s, k, usage.get(k)) for k in keys}
            check(states)
            for kind, name in keys:
                s.add(LimitEventRow(kind=kind, name=name, at=now, requests=1, tokens=0))
                s.add(
                    LimitHoldRow(
                        id=hold_id,
                        kind=kind,
                        name=name,
                        reserved=reserve.get((kind, name), 0),
                        expires_at=now + lease_s,
                    )
                )

    def rereserve(self, hold_id: str, budgeted: Sequence[SubjectKey], tokens: int) -> None:
        """Set the hold's reservation on each budgeted subject to ``tokens``."""
        with self.db.session() as s:
            for kind, name in budgeted:
                s.execute(
                    update(LimitHoldRow)
                    .where(LimitHoldRow.id == hold_id, LimitHoldRow.kind == kind, LimitHoldRow.name == name)
                    .values(reserved=max(0, tokens))
                )

    def release(self, hold_id: str, subjects: Sequence[SubjectKey], *, now: float, tokens: int) -> None:
        """Drop the hold (its slot and reservation) and charge ``tokens`` to each subject's window."""
        keys = list(dict.fromkeys(subjects))
        with self.db.session() as s:
            self._lock(s, keys)
            s.execute(delete(LimitHoldRow).where(LimitHoldRow.id == hold_id))
            if tokens > 0:
                for kind, name in keys:
                    s.add(LimitEventRow(kind=kind, name=name, at=now, requests=0, tokens=tokens))

    def holds(self, subject: SubjectKey, *, now: float) -> tuple[int, int]:
        """(requests in flight, tokens reserved) for one subject, live holds only."""
        kind, name = subject
        with self.db.session() as s:
            row = s.execute(
                select(func.count(), func.coalesce(func.sum(LimitHoldRow.reserved), 0)).where(
                    LimitHoldRow.kind == kind, LimitHoldRow.name == name, LimitHoldRow.expires_at > now
                )
            ).one()
            return int(row[0]), int(row[1])

    # ---- inside a transaction ------------------------------------------------------------

    def _lock(self, s: Session, keys: Sequence[SubjectKey]) -> None:
        insert = postgresql.insert if s.get_bind().dialect.name == "postgresql" else sqlite.insert
        for kind, name in sorted(keys):
            s.execute(
                insert(LimitSubjectRow).values(kind=kind, name=name, version=0).on_conflict_do_nothing()
            )
            s.execute(
                update(LimitSubjectRow)
                .where(LimitSubjectRow.kind == kind, LimitSubjectRow.name == name)
                .values(version=LimitSubjectRow.version + 1)
            )

    @staticmethod
    def _state(s: Session, key: SubjectKey, usage: UsageQuery | None) -> WindowState:
        kind, name = key
        in_flight, reserved = s.execute(
            select(func.count(), func.coalesce(func.sum(LimitHoldRow.reserved), 0)).where(
                LimitHoldRow.kind == kind, LimitHoldRow.name == name
            )
        ).one()
        events = s.execute(
            select(LimitEventRow.at, LimitEventRow.requests, LimitEventRow.tokens)
            .where(LimitEventRow.kind == kind, LimitEventRow.name == name)
            .order_by(LimitEventRow.at, LimitEventRow.id)
        ).all()
        used = None if usage is None else usage_tokens(s, usage)  # after the holds: see above
        return WindowState(
            requests=tuple(at for at, r, _ in events if r),
            tokens=tuple((at, t) for at, _, t in events if t),
            in_flight=int(in_flight),
            reserved=int(reserved),
            used=used,
        )
