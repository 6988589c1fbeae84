"""The document repository: collections, versioned documents, chunks and their vector index.

Every method is one transaction and every query is filtered by tenant: another tenant's
collection or document is NotFound. Storing a document (its row, its chunks, their embeddings
and index entries) commits whole or not at all.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import numpy as np
import sqlalchemy.exc
from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.orm import Session

from llmos.domain.data import ChunkHit, Collection, Document, NewDocument
from llmos.errors import Conflict, InvalidRequest, NotFound
from llmos.storage.data_keyword import keyword_search
from llmos.storage.data_vectors import Vector, VectorIndex, exact_top_k, vector_index
from llmos.storage.db import Database
from llmos.storage.rows_data import ChunkRow, CollectionRow, DocumentRow

Clock = Callable[[], datetime]


def _utc(value: datetime) -> datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def _collection(row: CollectionRow, documents: int = 0, chunks: int = 0) -> Collection:
    return Collection(
        id=row.id,
        tenant=row.tenant,
        name=row.name,
        embedding_model=row.embedding_model,
        dimensions=row.dimensions,
        chunk_tokens=row.chunk_tokens,
        chunk_overlap=row.chunk_overlap,
        description=row.description,
        created_at=_utc(row.created_at),
        document_count=documents,
        chunk_count=chunks,
    )


def _document(row: DocumentRow, collection: str) -> Document:
    return Document(
        id=row.id,
        collection=collection,
        name=row.name,
        version=row.version,
        latest=row.latest,
        content_type=row.content_type,
        digest=row.digest,
        size=row.size,
        chunk_count=row.chunk_count,
        token_count=row.token_count,
        embedding_model=row.embedding_model,
        metadata=dict(row.extra or {}),
        created_at=_utc(row.created_at),
    )


class DocumentStore:
    """Collections and documents on ``db``; ``index`` overrides the vector index (tests)."""

    def __init__(
        self,
        db: Database,
        *,
        clock: Clock = lambda: datetime.now(UTC),
        index: Callable[[Session], VectorIndex] = vector_index,
    ) -> None:
        self.db = db
        self._clock = clock
        self._index = index

    def index_kind(self) -> str:
        with self.db.session() as s:
            return self._index(s).kind

    # ---- collections ---------------------------------------------------------------------

    def _collection_row(self, s: Session, tenant: str, name: str, *, lock: bool = False) -> CollectionRow:
        q = select(CollectionRow).where(CollectionRow.tenant == tenant, CollectionRow.name == name)
        if lock and s.get_bind().dialect.name == "sqlite":
            # SQLite has no row locks, and its driver opens the transaction at the first write:
            # writing first takes the database's write lock (waiting out other writers), so the
            # reads that follow (latest version, next number) see every committed upload.
            s.execute(
                update(CollectionRow)
                .where(CollectionRow.tenant == tenant, CollectionRow.name == name)
                .values(name=CollectionRow.name)
            )
        elif lock:
            q = q.with_for_update()
        row = s.scalars(q).first()
        if row is None:
            raise NotFound(f"collection {name!r} not found; create it first", param="collection")
        return row

    def create_collection(
        self,
        tenant: str,
        name: str,
        *,
        embedding_model: str,
        chunk_tokens: int,
        chunk_overlap: int,
        description: str = "",
    ) -> Collection:
        """Raises Conflict when the tenant already has a collection of that name."""
        row = CollectionRow(
            tenant=tenant,
            name=name,
            embedding_model=embedding_model,
            dimensions=None,
            chunk_tokens=chunk_tokens,
            chunk_overlap=chunk_overlap,
            description=description,
            created_at=self._clock(),
        )
        try:
            with self.db.session() as s:
                s.add(row)
                s.flush()
                return _collection(row)
        except sqlalchemy.exc.IntegrityError:
            raise Conflict(f"collection {name!r} already exists", param="name") from None

    def _counts(self, s: Session, ids: Sequence[int]) -> dict[int, tuple[int, int]]:
        if not ids:
            return {}
        q = (
            select(DocumentRow.collection_id, func.count(DocumentRow.id), func.sum(DocumentRow.chunk_count))
            .where(DocumentRow.collection_id.in_(list(ids)), DocumentRow.latest.is_(True))
            .group_by(DocumentRow.collection_id)
        )
        return {int(c): (int(n), int(k or 0)) for c, n, k in s.execute(q)}

    def find_collections(self, tenant: str, names: Sequence[str]) -> list[Collection]:
        """The named collections (without counts), in order. Raises NotFound for a missing one."""
        with self.db.session() as s:
            rows = {
                r.name: r
                for r in s.scalars(
                    select(CollectionRow).where(
                        CollectionRow.tenant == tenant, CollectionRow.name.in_(list(names))
                    )
                )
            }
        missing = [n for n in names if n not in rows]
        if missing:
            raise NotFound(f"collection {missing[0]!r} not found; create it first", param="collection")
        return [_collection(rows[n]) for n in names]

    def get_collection(self, tenant: str, name: str) -> Collection:
        with self.db.session() as s:
            row = self._collection_row(s, tenant, name)
            return _collection(row, *self._counts(s, [row.id]).get(row.id, (0, 0)))

    def list_collections(self, tenant: str) -> list[Collection]:
        with self.db.session() as s:
            rows = list(
                s.scalars(
                    select(CollectionRow).where(CollectionRow.tenant == tenant).order_by(CollectionRow.name)
                )
            )
            counts = self._counts(s, [r.id for r in rows])
            return [_collection(r, *counts.get(r.id, (0, 0))) for r in rows]

    def delete_collection(self, tenant: str, name: str) -> None:
        """Remove a collection with every document version, chunk and index entry."""
        with self.db.session() as s:
            row = self._collection_row(s, tenant, name, lock=True)
            doc_ids = list(s.scalars(select(DocumentRow.id).where(DocumentRow.collection_id == row.id)))
            self._delete_documents(s, row, doc_ids)
            s.delete(row)

    # ---- documents -----------------------------------------------------------------------

    def add_document(self, tenant: str, collection: str, doc: NewDocument) -> Document:
        """Store ``doc`` as the newest version of its name (older versions stay, unindexed).

        Raises NotFound for an unknown collection, InvalidRequest when the embeddings' dimension
        differs from the collection's. Nothing is stored unless everything is.
        """
        dim = len(doc.chunks[0].embedding) if doc.chunks else None
        for attempt in range(3):
            try:
                with self.db.session() as s:
                    return self._add(s, tenant, collection, doc, dim)
            except sqlalchemy.exc.IntegrityError:
                # Two uploads of one name raced for the same version number: take the next.
                if attempt == 2:
                    raise Conflict(f"document {doc.name!r} is being uploaded concurrently; retry") from None
        raise AssertionError("unreachable")

    def _add(self, s: Session, tenant: str, collection: str, doc: NewDocument, dim: int | None) -> Document:
        col = self._collection_row(s, tenant, collection, lock=True)
        if dim is not None:
            if col.dimensions is None:
                col.dimensions = dim
            elif col.dimensions != dim:
                raise InvalidRequest(
                    f"collection {collection!r} holds {col.dimensions}-dimensional embeddings, but "
                    f"{doc.embedding_model!r} gave {dim}; use a collection per embedding model",
                    param="embedding_model",
                )
        index = self._index(s)
        previous = s.scalars(
            select(DocumentRow).where(
                DocumentRow.collection_id == col.id,
                DocumentRow.name == doc.name,
                DocumentRow.latest.is_(True),
            )
        ).first()
        top = s.scalar(
            select(func.max(DocumentRow.version)).where(
                DocumentRow.collection_id == col.id, DocumentRow.name == doc.name
            )
        )
        if previous is not None:
            previous.latest = False
            if col.dimensions is not None:
                index.remove(s, col.dimensions, self._chunk_ids(s, [previous.id]))
        row = DocumentRow(
            collection_id=col.id,
            tenant=tenant,
            name=doc.name,
            version=(top or 0) + 1,
            latest=True,
            content_type=doc.content_type,
            digest=doc.digest,
            size=doc.size,
            chunk_count=len(doc.chunks),
            token_count=sum(c.token_count for c in doc.chunks),
            embedding_model=doc.embedding_model,
            extra=dict(doc.metadata),
            created_at=self._clock(),
        )
        s.add(row)
        s.flush()
        if doc.chunks and dim is not None:
            blobs = [np.asarray(c.embedding, dtype=np.float32).tobytes() for c in doc.chunks]
            ids = list(
                s.scalars(
                    insert(ChunkRow).returning(ChunkRow.id, sort_by_parameter_order=True),
                    [
                        {
                            "document_id": row.id,
                            "collection_id": col.id,
                            "position": c.position,
                            "text": c.text,
                            "token_count": c.token_count,
                            "start_char": c.start,
                            "end_char": c.end,
                            "embedding": blob,
                        }
                        for c, blob in zip(doc.chunks, blobs, strict=True)
                    ],
                )
            )
            index.add(s, dim, [(i, col.id, b) for i, b in zip(ids, blobs, strict=True)])
        return _document(row, col.name)

    @staticmethod
    def _chunk_ids(s: Session, doc_ids: Sequence[int]) -> list[int]:
        if not doc_ids:
            return []
        return list(s.scalars(select(ChunkRow.id).where(ChunkRow.document_id.in_(list(doc_ids)))))

    def list_documents(
        self, tenant: str, collection: str, *, name: str | None = None, all_versions: bool = False
    ) -> list[Document]:
        """Latest versions (or every version), by name then version."""
        with self.db.session() as s:
            col = self._collection_row(s, tenant, collection)
            q = select(DocumentRow).where(DocumentRow.collection_id == col.id)
            if name is not None:
                q = q.where(DocumentRow.name == name)
            if not all_versions:
                q = q.where(DocumentRow.latest.is_(True))
            rows = s.scalars(q.order_by(DocumentRow.name, DocumentRow.version))
            return [_document(r, col.name) for r in rows]

    def get_document(self, tenant: str, collection: str, document_id: int) -> Document:
        with self.db.session() as s:
            col = self._collection_row(s, tenant, collection)
            return _document(self._document_row(s, col, document_id), col.name)

    @staticmethod
    def _document_row(s: Session, col: CollectionRow, document_id: int) -> DocumentRow:
        row = s.get(DocumentRow, document_id)
        if row is None or row.collection_id != col.id:
            raise NotFound(f"document {document_id} not found in collection {col.name!r}", param="document")
        return row

    def delete_document(self, tenant: str, collection: str, document_id: int) -> Document:
        """Delete one version; when it was the latest, the newest remaining version takes its place."""
        with self.db.session() as s:
            col = self._collection_row(s, tenant, collection, lock=True)
            row = self._document_row(s, col, document_id)
            gone = _document(row, col.name)
            self._delete_documents(s, col, [row.id])
            if gone.latest:
                heir = s.scalars(
                    select(DocumentRow)
                    .where(DocumentRow.collection_id == col.id, DocumentRow.name == gone.name)
                    .order_by(DocumentRow.version.desc())
                ).first()
                if heir is not None:
                    heir.latest = True
                    if col.dimensions is not None:
                        rows = s.execute(
                            select(ChunkRow.id, ChunkRow.embedding).where(ChunkRow.document_id == heir.id)
                        )
                        self._index(s).add(s, col.dimensions, [(int(i), col.id, bytes(e)) for i, e in rows])
            return gone

    def delete_named(self, tenant: str, collection: str, name: str) -> list[Document]:
        """Delete every version of ``name``. Raises NotFound when there is none."""
        with self.db.session() as s:
            col = self._collection_row(s, tenant, collection, lock=True)
            rows = list(
                s.scalars(
                    select(DocumentRow).where(DocumentRow.collection_id == col.id, DocumentRow.name == name)
                )
            )
            if not rows:
                raise NotFound(f"no document named {name!r} in collection {collection!r}", param="name")
            gone = [_document(r, col.name) for r in rows]
            self._delete_documents(s, col, [r.id for r in rows])
            return gone

    def _delete_documents(self, s: Session, col: CollectionRow, doc_ids: list[int]) -> None:
        if not doc_ids:
            return
        if col.dimensions is not None:
            self._index(s).remove(s, col.dimensions, self._chunk_ids(s, doc_ids))
        # Chunks are deleted explicitly (not by cascade) so the full-text triggers see each one.
        s.execute(delete(ChunkRow).where(ChunkRow.document_id.in_(doc_ids)))
        s.execute(delete(DocumentRow).where(DocumentRow.id.in_(doc_ids)))

    # ---- search --------------------------------------------------------------------------

    def vector_search(
        self, collections: Sequence[Collection], query: Vector, k: int
    ) -> list[tuple[int, float]]:
        """Nearest latest-version chunks of ``collections`` (same dimension) to ``query``."""
        ids = [c.id for c in collections if c.dimensions is not None]
        if not ids:
            return []
        dim = collections[0].dimensions
        with self.db.session() as s:
            return self._index(s).search(s, int(dim or 0), query, ids, k)

    def exact_search(
        self, collections: Sequence[Collection], query: Vector, k: int, document_ids: Sequence[int]
    ) -> list[tuple[int, float]]:
        """Exact nearest chunks among ``document_ids`` (used when filters leave the index short)."""
        if not document_ids:
            return []
        with self.db.session() as s:
            rows = s.execute(
                select(ChunkRow.id, ChunkRow.embedding).where(
                    ChunkRow.document_id.in_(list(document_ids)),
                    ChunkRow.collection_id.in_([c.id for c in collections]),
                )
            ).all()
        if not rows:
            return []
        dim = len(rows[0][1]) // 4
        ids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
        matrix = np.frombuffer(b"".join(r[1] for r in rows), dtype=np.float32).reshape(len(rows), dim)
        return exact_top_k(ids, matrix, query, k)

    def keyword_search(
        self, collections: Sequence[Collection], query: str, k: int
    ) -> list[tuple[int, float]]:
        with self.db.session() as s:
            return keyword_search(s, query, [c.id for c in collections], k)

    def latest_documents(self, collections: Sequence[Collection]) -> list[tuple[int, Mapping[str, Any]]]:
        """``(id, metadata)`` of every latest document in ``collections`` (for metadata filters)."""
        with self.db.session() as s:
            rows = s.execute(
                select(DocumentRow.id, DocumentRow.extra).where(
                    DocumentRow.collection_id.in_([c.id for c in collections]), DocumentRow.latest.is_(True)
                )
            )
            return [(int(i), dict(m or {})) for i, m in rows]

    def chunks(self, chunk_ids: Sequence[int]) -> dict[int, ChunkHit]:
        """The chunks (with their document and collection names) of ``chunk_ids``."""
        if not chunk_ids:
            return {}
        with self.db.session() as s:
            rows = s.execute(
                select(ChunkRow, DocumentRow, CollectionRow.name)
                .join(DocumentRow, DocumentRow.id == ChunkRow.document_id)
                .join(CollectionRow, CollectionRow.id == DocumentRow.collection_id)
                .where(ChunkRow.id.in_(list(chunk_ids)))
            )
            return {
                c.id: ChunkHit(
                    chunk_id=c.id,
                    document_id=d.id,
                    document=d.name,
                    version=d.version,
                    collection=name,
                    position=c.position,
                    text=c.text,
                    metadata=dict(d.extra or {}),
                )
                for c, d, name in rows
            }
