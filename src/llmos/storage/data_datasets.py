"""The dataset repository: tenants' fine-tuning datasets (rows; the bytes are blobs)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import sqlalchemy.exc
from sqlalchemy import func, select

from llmos.domain.data import Dataset
from llmos.errors import Conflict, NotFound
from llmos.storage.db import Database
from llmos.storage.rows_data import DatasetRow


def _dataset(row: DatasetRow) -> Dataset:
    created = row.created_at if row.created_at.tzinfo is not None else row.created_at.replace(tzinfo=UTC)
    return Dataset(
        id=row.id,
        tenant=row.tenant,
        name=row.name,
        version=row.version,
        format=row.format,  # type: ignore[arg-type]
        digest=row.digest,
        size=row.size,
        line_count=row.line_count,
        token_count=row.token_count,
        created_at=created,
    )


class DatasetStore:
    def __init__(self, db: Database, *, clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self.db = db
        self._clock = clock

    def add(
        self,
        tenant: str,
        name: str,
        *,
        format: str,
        digest: str,
        size: int,
        line_count: int,
        token_count: int,
    ) -> Dataset:
        """Record a dataset as the next version of ``name``."""
        for _ in range(3):
            try:
                with self.db.session() as s:
                    top = s.scalar(
                        select(func.max(DatasetRow.version)).where(
                            DatasetRow.tenant == tenant, DatasetRow.name == name
                        )
                    )
                    row = DatasetRow(
                        tenant=tenant,
                        name=name,
                        version=(top or 0) + 1,
                        format=format,
                        digest=digest,
                        size=size,
                        line_count=line_count,
                        token_count=token_count,
                        created_at=self._clock(),
                    )
                    s.add(row)
                    s.flush()
                    return _dataset(row)
            except sqlalchemy.exc.IntegrityError:
                continue
        raise Conflict(f"dataset {name!r} is being uploaded concurrently; retry", param="name")

    def list(self, tenant: str) -> list[Dataset]:
        with self.db.session() as s:
            rows = s.scalars(
                select(DatasetRow)
                .where(DatasetRow.tenant == tenant)
                .order_by(DatasetRow.name, DatasetRow.version)
            )
            return [_dataset(r) for r in rows]

    def get(self, tenant: str, dataset_id: int) -> Dataset:
        with self.db.session() as s:
            row = s.get(DatasetRow, dataset_id)
            if row is None or row.tenant != tenant:
                raise NotFound(f"dataset {dataset_id} not found", param="dataset")
            return _dataset(row)

    def in_use(self, digest: str) -> bool:
        """Whether any dataset (of any tenant) holds the blob ``digest``."""
        with self.db.session() as s:
            return bool(s.scalar(select(func.count(DatasetRow.id)).where(DatasetRow.digest == digest)))

    def delete(self, tenant: str, dataset_id: int) -> tuple[Dataset, bool]:
        """Remove the row; also says whether any dataset still uses its blob."""
        with self.db.session() as s:
            row = s.get(DatasetRow, dataset_id)
            if row is None or row.tenant != tenant:
                raise NotFound(f"dataset {dataset_id} not found", param="dataset")
            gone = _dataset(row)
            s.delete(row)
            s.flush()
            still = s.scalar(select(func.count(DatasetRow.id)).where(DatasetRow.digest == gone.digest))
            return gone, bool(still)
