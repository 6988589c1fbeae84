"""The training repository: fine-tuning jobs, their events and checkpoints (rows → domain types).

Reads take a tenant: another tenant's job is a NotFound, worded like a missing one.
"""

from __future__ import annotations

import builtins
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

from sqlalchemy import select

from llmos.domain.training import (
    Checkpoint,
    EventLevel,
    Hyperparameters,
    Job,
    JobEvent,
    JobState,
    Progress,
)
from llmos.errors import NotFound
from llmos.storage.db import Database
from llmos.storage.rows_training import TrainingCheckpointRow, TrainingEventRow, TrainingJobRow

_Row = TypeVar("_Row", TrainingJobRow, TrainingEventRow, TrainingCheckpointRow)
_T = TypeVar("_T")


def _utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def _job(row: TrainingJobRow) -> Job:
    created = _utc(row.created_at)
    return Job(
        id=row.id,
        tenant=row.tenant,
        model=row.model,
        base_digest=row.base_digest,
        training_dataset=row.training_dataset,
        validation_dataset=row.validation_dataset,
        hyperparameters=Hyperparameters.from_dict(row.hyperparameters),
        suffix=row.suffix,
        state=row.state,  # type: ignore[arg-type]
        created_at=created if created is not None else datetime.now(UTC),
        started_at=_utc(row.started_at),
        finished_at=_utc(row.finished_at),
        error=row.error,
        result_model=row.result_model,
        trained_tokens=row.trained_tokens,
        progress=Progress(**row.progress) if row.progress else None,
    )


def _event(row: TrainingEventRow) -> JobEvent:
    return JobEvent(
        id=row.id,
        job_id=row.job_id,
        created_at=_utc(row.created_at) or datetime.now(UTC),
        level=row.level,  # type: ignore[arg-type]
        message=row.message,
        type=row.type,  # type: ignore[arg-type]
        data=dict(row.data),
    )


def _checkpoint(row: TrainingCheckpointRow) -> Checkpoint:
    return Checkpoint(
        id=row.id,
        job_id=row.job_id,
        step=row.step,
        created_at=_utc(row.created_at) or datetime.now(UTC),
        metrics=dict(row.metrics),
    )


class TrainingStore:
    def __init__(self, db: Database, *, clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self.db = db
        self._clock = clock

    def _insert(self, row: _Row, read: Callable[[_Row], _T]) -> _T:
        """Add ``row`` and return it as ``read`` maps it (after the flush: ids and defaults set)."""
        with self.db.session() as s:
            s.add(row)
            s.flush()
            return read(row)

    def add(self, job: Job) -> Job:
        """Record a new (queued) job."""
        return self._insert(
            TrainingJobRow(
                id=job.id,
                tenant=job.tenant,
                model=job.model,
                base_digest=job.base_digest,
                training_dataset=job.training_dataset,
                validation_dataset=job.validation_dataset,
                hyperparameters=job.hyperparameters.to_dict(),
                suffix=job.suffix,
                state=job.state,
                trained_tokens=0,
                created_at=job.created_at,
            ),
            _job,
        )

    def get(self, tenant: str | None, job_id: str) -> Job:
        """The job; ``tenant`` None reads any tenant's (the manager). Raises NotFound."""
        with self.db.session() as s:
            return _job(self._row(s, tenant, job_id))

    def list(self, tenant: str, *, after: str | None = None, limit: int = 20) -> builtins.list[Job]:
        """The tenant's jobs, newest first; ``after`` a job id: the page after it."""
        with self.db.session() as s:
            q = select(TrainingJobRow).where(TrainingJobRow.tenant == tenant)
            if after is not None:
                anchor = self._row(s, tenant, after)
                q = q.where(
                    (TrainingJobRow.created_at < anchor.created_at)
                    | ((TrainingJobRow.created_at == anchor.created_at) & (TrainingJobRow.id < anchor.id))
                )
            q = q.order_by(TrainingJobRow.created_at.desc(), TrainingJobRow.id.desc()).limit(limit)
            return [_job(r) for r in s.scalars(q)]

    def in_states(self, *states: JobState) -> builtins.list[Job]:
        """Every tenant's jobs in these states, oldest first (the queue, recovery at start)."""
        with self.db.session() as s:
            q = (
                select(TrainingJobRow)
                .where(TrainingJobRow.state.in_(states))
                .order_by(TrainingJobRow.created_at, TrainingJobRow.id)
            )
            return [_job(r) for r in s.scalars(q)]

    def using_base(self, base_digest: str) -> builtins.list[Job]:
        """Unfinished jobs training on ``base_digest`` (a base they need must not be removed)."""
        with self.db.session() as s:
            q = select(TrainingJobRow).where(
                TrainingJobRow.base_digest == base_digest, TrainingJobRow.state.in_(("queued", "running"))
            )
            return [_job(r) for r in s.scalars(q)]

    def set_state(
        self,
        job_id: str,
        state: JobState,
        *,
        error: str | None = None,
        result_model: str | None = None,
        only_from: tuple[JobState, ...] | None = None,
    ) -> Job | None:
        """Move the job to ``state`` (stamping start/finish times); with ``only_from``, only if it
        is in one of those states (None when it was not: another path got there first)."""
        with self.db.session() as s:
            row = self._row(s, None, job_id)
            if only_from is not None and row.state not in only_from:
                return None
            row.state = state
            now = self._clock()
            if state == "running" and row.started_at is None:
                row.started_at = now
            if state in ("succeeded", "failed", "cancelled"):
                row.finished_at = now
            if error is not None:
                row.error = error
            if result_model is not None:
                row.result_model = result_model
            s.flush()
            return _job(row)

    def set_progress(self, job_id: str, progress: Progress) -> None:
        with self.db.session() as s:
            row = self._row(s, None, job_id)
            row.progress = progress.to_dict()
            row.trained_tokens = progress.trained_tokens

    def add_event(
        self,
        job_id: str,
        message: str,
        *,
        level: EventLevel = "info",
        type: str = "message",
        data: dict[str, Any] | None = None,
    ) -> JobEvent:
        return self._insert(
            TrainingEventRow(
                job_id=job_id,
                created_at=self._clock(),
                level=level,
                type=type,
                message=message,
                data=data or {},
            ),
            _event,
        )

    def events(
        self, tenant: str, job_id: str, *, after: int | None = None, limit: int = 20
    ) -> builtins.list[JobEvent]:
        """The job's events, newest first (OpenAI's order); ``after`` an event id: older ones."""
        with self.db.session() as s:
            self._row(s, tenant, job_id)
            q = select(TrainingEventRow).where(TrainingEventRow.job_id == job_id)
            if after is not None:
                q = q.where(TrainingEventRow.id < after)
            q = q.order_by(TrainingEventRow.id.desc()).limit(limit)
            return [_event(r) for r in s.scalars(q)]

    def events_since(
        self, tenant: str, job_id: str, since: int = 0, *, limit: int = 500
    ) -> builtins.list[JobEvent]:
        """Events newer than ``since``, oldest first (what a follower reads next)."""
        with self.db.session() as s:
            self._row(s, tenant, job_id)
            q = (
                select(TrainingEventRow)
                .where(TrainingEventRow.job_id == job_id, TrainingEventRow.id > since)
                .order_by(TrainingEventRow.id)
                .limit(limit)
            )
            return [_event(r) for r in s.scalars(q)]

    def add_checkpoint(self, checkpoint: Checkpoint) -> Checkpoint:
        return self._insert(
            TrainingCheckpointRow(
                id=checkpoint.id,
                job_id=checkpoint.job_id,
                step=checkpoint.step,
                created_at=checkpoint.created_at,
                metrics=checkpoint.metrics,
            ),
            _checkpoint,
        )

    def checkpoints(self, tenant: str, job_id: str, *, limit: int = 20) -> builtins.list[Checkpoint]:
        """The job's checkpoints, newest first."""
        with self.db.session() as s:
            self._row(s, tenant, job_id)
            q = (
                select(TrainingCheckpointRow)
                .where(TrainingCheckpointRow.job_id == job_id)
                .order_by(TrainingCheckpointRow.step.desc())
                .limit(limit)
            )
            return [_checkpoint(r) for r in s.scalars(q)]

    def delete(self, job_id: str) -> None:
        """Remove a job row with its events and checkpoints (a job whose creation failed)."""
        with self.db.session() as s:
            for model in (TrainingEventRow, TrainingCheckpointRow):
                for r in s.scalars(select(model).where(model.job_id == job_id)):
                    s.delete(r)
            row = s.get(TrainingJobRow, job_id)
            if row is not None:
                s.delete(row)

    @staticmethod
    def _row(s: Any, tenant: str | None, job_id: str) -> TrainingJobRow:
        row = s.get(TrainingJobRow, job_id)
        if row is None or (tenant is not None and row.tenant != tenant):
            raise NotFound(f"fine-tuning job {job_id!r} not found", param="fine_tuning_job_id")
        return row  # type: ignore[no-any-return]
