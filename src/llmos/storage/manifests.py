"""The manifest repository: model versions and the tags that name them."""

from __future__ import annotations

import builtins
from collections.abc import Callable
from datetime import UTC, datetime

import sqlalchemy.exc
from sqlalchemy import delete, exists, select
from sqlalchemy.orm import Session

from llmos.domain.manifest import Manifest, ManifestFile
from llmos.storage.db import Database
from llmos.storage.rows import ManifestFileRow, ManifestRow, TagRow
from llmos.types import Digest

_SAVE_ATTEMPTS = 3


def _utc(value: datetime) -> datetime:
    # SQLite hands back naive datetimes; everything stored is UTC.
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def _to_domain(row: ManifestRow, name: str | None = None) -> Manifest:
    return Manifest(
        name=name or row.name,
        digest=row.digest,
        size=row.size,
        format=row.format,  # type: ignore[arg-type]
        files=tuple(ManifestFile(path=f.path, digest=f.digest, size=f.size) for f in row.files),
        architecture=row.architecture,
        parameter_count=row.parameter_count,
        quantization=row.quantization,
        context_length=row.context_length,
        embedding_length=row.embedding_length,
        chat_template=row.chat_template,
        parameters=dict(row.parameters or {}),
        license=row.license,
        source=row.source,
        parent=row.parent,
        created_at=_utc(row.created_at),
        metadata=dict(row.extra or {}),
    )


def _to_row(m: Manifest, family: str, created_at: datetime) -> ManifestRow:
    return ManifestRow(
        family=family,
        name=m.name,
        digest=m.digest,
        size=m.size,
        format=m.format,
        architecture=m.architecture,
        parameter_count=m.parameter_count,
        quantization=m.quantization,
        context_length=m.context_length,
        embedding_length=m.embedding_length,
        chat_template=m.chat_template,
        parameters=dict(m.parameters),
        license=m.license,
        source=m.source,
        parent=m.parent,
        created_at=created_at,
        extra=dict(m.metadata),
        files=[
            ManifestFileRow(position=i, path=f.path, digest=f.digest, size=f.size)
            for i, f in enumerate(m.files)
        ],
    )


class ManifestRepository:
    """Versions are keyed by (family, digest); a tag points a ``family:tag`` at one of them.

    Every method is one transaction. Returned manifests carry the name they were asked for.
    """

    def __init__(self, db: Database, *, clock: Callable[[], datetime] | None = None) -> None:
        self._db = db
        self._clock = clock or (lambda: datetime.now(UTC))

    def close(self) -> None:
        """Release the database's connections."""
        self._db.dispose()

    # ---- queries --------------------------------------------------------------------------

    def by_tag(self, family: str, tag: str) -> Manifest | None:
        with self._db.session() as s:
            row = s.get(TagRow, (family, tag))
            return _to_domain(row.manifest, f"{family}:{tag}") if row is not None else None

    def by_digest(self, family: str, digest: Digest) -> Manifest | None:
        with self._db.session() as s:
            row = self._version(s, family, digest)
            return _to_domain(row) if row is not None else None

    def tagged(self) -> builtins.list[Manifest]:
        """Every tagged name with the version it points at, sorted by name."""
        with self._db.session() as s:
            rows = s.scalars(select(TagRow).order_by(TagRow.family, TagRow.tag)).all()
            return [_to_domain(r.manifest, f"{r.family}:{r.tag}") for r in rows]

    def versions(self, family: str, tag: str) -> builtins.list[Manifest]:
        """Every version registered under ``family:tag`` (plus the one it points at), newest first."""
        name = f"{family}:{tag}"
        with self._db.session() as s:
            rows = list(s.scalars(select(ManifestRow).where(ManifestRow.name == name)).all())
            current = s.get(TagRow, (family, tag))
            if current is not None and all(r.id != current.manifest_id for r in rows):
                rows.append(current.manifest)
            rows.sort(key=lambda r: (_utc(r.created_at), r.id), reverse=True)
            return [_to_domain(r) for r in rows]

    def blob_digests(self) -> set[Digest]:
        """Every blob digest some version references."""
        with self._db.session() as s:
            return set(s.scalars(select(ManifestFileRow.digest).distinct()).all())

    def is_blob_referenced(self, digest: Digest) -> bool:
        with self._db.session() as s:
            return bool(s.scalar(select(exists().where(ManifestFileRow.digest == digest))))

    def by_content(self, digest: Digest) -> Manifest | None:
        """Any version with this content digest (for materialising multi-file models)."""
        with self._db.session() as s:
            row = s.scalars(select(ManifestRow).where(ManifestRow.digest == digest).limit(1)).first()
            return _to_domain(row) if row is not None else None

    # ---- commands -------------------------------------------------------------------------

    def save(self, manifest: Manifest, family: str, tag: str) -> Manifest:
        """Store ``manifest`` as a version of ``family`` (kept if that version exists already) and
        point ``family:tag`` at it. Returns the stored version named ``family:tag``."""
        now = self._clock()
        for attempt in range(_SAVE_ATTEMPTS):
            try:
                with self._db.session() as s:
                    row = self._version(s, family, manifest.digest)
                    if row is None:
                        row = _to_row(manifest, family, manifest.created_at or now)
                        s.add(row)
                        s.flush()
                    self._point(s, family, tag, row, now)
                    return _to_domain(row, f"{family}:{tag}")
            except sqlalchemy.exc.IntegrityError:
                # Another writer stored the same version or tag between our read and write;
                # the retry sees its row and points the tag at it.
                if attempt == _SAVE_ATTEMPTS - 1:
                    raise
        raise AssertionError("unreachable")

    def untag(self, family: str, tag: str) -> builtins.list[Manifest]:
        """Remove ``family:tag`` and the versions registered under it that no other tag names.
        Returns the versions deleted (empty when the tag did not exist)."""
        name = f"{family}:{tag}"
        with self._db.session() as s:
            current = s.get(TagRow, (family, tag))
            if current is None:
                return []
            candidates = {current.manifest_id: current.manifest}
            for row in s.scalars(select(ManifestRow).where(ManifestRow.name == name)).all():
                candidates[row.id] = row
            s.delete(current)
            s.flush()
            still_tagged = set(
                s.scalars(select(TagRow.manifest_id).where(TagRow.manifest_id.in_(candidates))).all()
            )
            removed = [r for i, r in candidates.items() if i not in still_tagged]
            out = [_to_domain(r) for r in removed]
            for r in removed:
                s.delete(r)
            return out

    def delete_version(self, family: str, digest: Digest) -> Manifest | None:
        """Delete one version and every tag pointing at it. Returns it, or None if absent."""
        with self._db.session() as s:
            row = self._version(s, family, digest)
            if row is None:
                return None
            out = _to_domain(row)
            s.execute(delete(TagRow).where(TagRow.manifest_id == row.id))
            s.delete(row)
            return out

    # ---- helpers --------------------------------------------------------------------------

    @staticmethod
    def _version(s: Session, family: str, digest: Digest) -> ManifestRow | None:
        return s.scalars(
            select(ManifestRow).where(ManifestRow.family == family, ManifestRow.digest == digest)
        ).first()

    @staticmethod
    def _point(s: Session, family: str, tag: str, row: ManifestRow, now: datetime) -> None:
        existing = s.get(TagRow, (family, tag))
        if existing is None:
            s.add(TagRow(family=family, tag=tag, manifest_id=row.id, updated_at=now))
        else:
            existing.manifest_id = row.id
            existing.updated_at = now
