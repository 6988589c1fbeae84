"""Vector indexes over chunk embeddings: sqlite-vec in SQLite, pgvector in PostgreSQL.

Each embedding dimension gets its own table, ``data_vectors_<dim>``, created on first use and
filled from the embeddings stored in ``data_chunks`` (the source of truth), so an index can
always be rebuilt. The table holds only the chunks of each document's *latest* version: older
versions keep their chunks and embeddings but leave the index until they become latest again.

- SQLite: a ``vec0`` virtual table (sqlite-vec), cosine distance, partitioned by collection.
  sqlite-vec scans exactly (SIMD brute force over compact chunks), so its recall is 1.0.
- PostgreSQL: a ``vector(<dim>)`` column with an HNSW index (``vector_cosine_ops``); with
  pgvector ≥ 0.8 filtered queries use iterative index scans.
- Neither available (the extension cannot load): :class:`ExactIndex` ranks with numpy over the
  stored embeddings — correct, slower on large collections; a warning says so once.

All writes run in the caller's session, so they commit or roll back with the chunks.
"""

from __future__ import annotations

import logging
import threading
import weakref
from collections.abc import Sequence
from typing import Any, Protocol, cast

import numpy as np
from numpy.typing import NDArray
from sqlalchemy import Engine, bindparam, select, text
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.orm import Session

from llmos.storage.rows_data import ChunkRow, CollectionRow, DocumentRow

log = logging.getLogger(__name__)

Vector = NDArray[np.float32]
Row = tuple[int, int, bytes]
"""(chunk id, collection id, float32 embedding bytes)."""

EF_SEARCH_MIN = 100
"""HNSW candidate list per query (pgvector's default is 40); measured recall@10 ≥ 0.95 with it
(bench/results/data_retrieval.md)."""
HNSW_MAX_DIM = 2000
"""pgvector's HNSW limit for ``vector``; above it PostgreSQL scans exactly."""


def table_name(dim: int) -> str:
    return f"data_vectors_{int(dim)}"


def normalize(v: Vector) -> Vector:
    norm = float(np.linalg.norm(v))
    return v / norm if norm > 0 else v


class VectorIndex(Protocol):
    kind: str

    def add(self, s: Session, dim: int, rows: Sequence[Row]) -> None:
        """Index ``rows`` (in ``s``'s transaction)."""
        ...

    def remove(self, s: Session, dim: int, chunk_ids: Sequence[int]) -> None: ...

    def search(
        self, s: Session, dim: int, query: Vector, collection_ids: Sequence[int], k: int
    ) -> list[tuple[int, float]]:
        """Up to ``k`` ``(chunk id, cosine similarity)`` pairs, most similar first."""
        ...


def _latest_rows(s: Session, dim: int) -> list[Row]:
    q = (
        select(ChunkRow.id, ChunkRow.collection_id, ChunkRow.embedding)
        .join(DocumentRow, DocumentRow.id == ChunkRow.document_id)
        .join(CollectionRow, CollectionRow.id == ChunkRow.collection_id)
        .where(DocumentRow.latest.is_(True), CollectionRow.dimensions == dim)
    )
    return [(int(a), int(b), bytes(c)) for a, b, c in s.execute(q)]


class ExactIndex:
    """Brute force over ``data_chunks.embedding`` with numpy (the fallback, and the reference)."""

    kind = "exact"

    def add(self, s: Session, dim: int, rows: Sequence[Row]) -> None:
        return None

    def remove(self, s: Session, dim: int, chunk_ids: Sequence[int]) -> None:
        return None

    def search(
        self, s: Session, dim: int, query: Vector, collection_ids: Sequence[int], k: int
    ) -> list[tuple[int, float]]:
        q = (
            select(ChunkRow.id, ChunkRow.embedding)
            .join(DocumentRow, DocumentRow.id == ChunkRow.document_id)
            .where(DocumentRow.latest.is_(True), ChunkRow.collection_id.in_(list(collection_ids)))
        )
        rows = s.execute(q).all()
        if not rows:
            return []
        ids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
        matrix = np.frombuffer(b"".join(r[1] for r in rows), dtype=np.float32).reshape(len(rows), dim)
        return exact_top_k(ids, matrix, query, k)


def exact_top_k(ids: NDArray[np.int64], matrix: Vector, query: Vector, k: int) -> list[tuple[int, float]]:
    """The ``k`` rows of ``matrix`` most cosine-similar to ``query``, best first."""
    norms = np.linalg.norm(matrix, axis=1)
    norms[norms == 0] = 1.0
    sims = (matrix @ normalize(query.astype(np.float32))) / norms
    k = min(k, len(ids))
    top = np.argpartition(-sims, k - 1)[:k]
    top = top[np.argsort(-sims[top], kind="stable")]
    return [(int(ids[i]), float(sims[i])) for i in top]


class _Ensured:
    """Which dimension tables exist, per engine (DDL runs once per process and dimension)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._seen: weakref.WeakKeyDictionary[Engine, set[int]] = weakref.WeakKeyDictionary()

    def has(self, engine: Engine, dim: int) -> bool:
        with self._lock:
            return dim in self._seen.get(engine, set())

    def mark(self, engine: Engine, dim: int) -> None:
        with self._lock:
            self._seen.setdefault(engine, set()).add(dim)


class SqliteVecIndex:
    kind = "sqlite-vec"

    def __init__(self) -> None:
        self._ensured = _Ensured()

    def _ensure(self, s: Session, dim: int) -> set[int]:
        """Create the dimension's table if missing, filled from ``data_chunks``; the ids filled."""
        engine = s.get_bind().engine
        if self._ensured.has(engine, dim):
            return set()
        filled: set[int] = set()
        name = table_name(dim)
        exists = s.execute(
            text("SELECT 1 FROM sqlite_master WHERE type='table' AND name=:n"), {"n": name}
        ).first()
        if exists is None:
            s.execute(
                text(
                    f"CREATE VIRTUAL TABLE {name} USING vec0("
                    "chunk_id integer primary key, collection_id integer partition key, "
                    f"embedding float[{int(dim)}] distance_metric=cosine)"
                )
            )
            rows = _latest_rows(s, dim)
            self._insert(s, dim, rows)
            filled = {r[0] for r in rows}
        self._ensured.mark(engine, dim)
        return filled

    def _insert(self, s: Session, dim: int, rows: Sequence[Row]) -> None:
        if rows:
            s.execute(
                text(
                    f"INSERT INTO {table_name(dim)}(chunk_id, collection_id, embedding) VALUES (:i, :c, :e)"
                ),
                [{"i": i, "c": c, "e": e} for i, c, e in rows],
            )

    def add(self, s: Session, dim: int, rows: Sequence[Row]) -> None:
        filled = self._ensure(s, dim)
        self._insert(s, dim, [r for r in rows if r[0] not in filled])

    def remove(self, s: Session, dim: int, chunk_ids: Sequence[int]) -> None:
        self._ensure(s, dim)
        stmt = text(f"DELETE FROM {table_name(dim)} WHERE chunk_id IN :ids").bindparams(
            bindparam("ids", expanding=True)
        )
        for start in range(0, len(chunk_ids), 500):
            s.execute(stmt, {"ids": list(chunk_ids[start : start + 500])})

    def search(
        self, s: Session, dim: int, query: Vector, collection_ids: Sequence[int], k: int
    ) -> list[tuple[int, float]]:
        self._ensure(s, dim)
        blob = query.astype(np.float32).tobytes()
        stmt = text(
            f"SELECT chunk_id, distance FROM {table_name(dim)} "
            "WHERE embedding MATCH :q AND k = :k AND collection_id = :c"
        )
        hits: list[tuple[int, float]] = []
        # A partition key takes one value per query; a request names few collections.
        for cid in collection_ids:
            hits.extend((int(i), 1.0 - float(d)) for i, d in s.execute(stmt, {"q": blob, "k": k, "c": cid}))
        hits.sort(key=lambda h: -h[1])
        return hits[:k]


def _binary_vectors(s: Session) -> bool:
    """Whether vectors can travel in pgvector's binary format on this session's connection
    (registering the adapters once per connection); text literals are the fallback."""
    try:
        from pgvector.psycopg import register_vector
    except ImportError:
        return False
    pooled = s.connection().connection
    if not pooled.info.get("pgvector_binary"):
        register_vector(cast(Any, pooled.dbapi_connection))
        pooled.info["pgvector_binary"] = True
    return True


def _vector_literal(data: bytes) -> str:
    return "[" + ",".join(repr(float(x)) for x in np.frombuffer(data, dtype=np.float32)) + "]"


class PgVectorIndex:
    kind = "pgvector"

    def __init__(self, version: tuple[int, ...]) -> None:
        self.version = version
        self.iterative = version >= (0, 8)
        self._ensured = _Ensured()

    def _ensure(self, s: Session, dim: int) -> set[int]:
        """Create the dimension's table if missing, filled from ``data_chunks``; the ids filled."""
        engine = s.get_bind().engine
        if self._ensured.has(engine, dim):
            return set()
        filled: set[int] = set()
        name = table_name(dim)
        # Two processes may meet here first: serialize the DDL per dimension.
        s.execute(text("SELECT pg_advisory_xact_lock(hashtext(:n))"), {"n": name})
        exists = s.execute(text("SELECT to_regclass(:n)"), {"n": name}).scalar()
        if exists is None:
            s.execute(
                text(
                    f"CREATE TABLE {name} (chunk_id bigint PRIMARY KEY REFERENCES data_chunks(id) "
                    f"ON DELETE CASCADE, collection_id integer NOT NULL, embedding vector({int(dim)}) NOT NULL)"
                )
            )
            s.execute(text(f"CREATE INDEX {name}_collection ON {name} (collection_id)"))
            if dim <= HNSW_MAX_DIM:
                s.execute(
                    text(f"CREATE INDEX {name}_hnsw ON {name} USING hnsw (embedding vector_cosine_ops)")
                )
            rows = _latest_rows(s, dim)
            self._insert(s, dim, rows)
            filled = {r[0] for r in rows}
        self._ensured.mark(engine, dim)
        return filled

    def _insert(self, s: Session, dim: int, rows: Sequence[Row]) -> None:
        if not rows:
            return
        binary = _binary_vectors(s)
        s.execute(
            text(
                f"INSERT INTO {table_name(dim)} (chunk_id, collection_id, embedding) "
                "VALUES (:i, :c, CAST(:e AS vector))"
            ),
            [
                {"i": i, "c": c, "e": np.frombuffer(e, dtype=np.float32) if binary else _vector_literal(e)}
                for i, c, e in rows
            ],
        )

    def add(self, s: Session, dim: int, rows: Sequence[Row]) -> None:
        filled = self._ensure(s, dim)
        self._insert(s, dim, [r for r in rows if r[0] not in filled])

    def remove(self, s: Session, dim: int, chunk_ids: Sequence[int]) -> None:
        self._ensure(s, dim)
        if chunk_ids:
            s.execute(
                text(f"DELETE FROM {table_name(dim)} WHERE chunk_id = ANY(:ids)"), {"ids": list(chunk_ids)}
            )

    def search(
        self, s: Session, dim: int, query: Vector, collection_ids: Sequence[int], k: int
    ) -> list[tuple[int, float]]:
        self._ensure(s, dim)
        s.execute(text(f"SET LOCAL hnsw.ef_search = {max(EF_SEARCH_MIN, min(1000, 2 * int(k)))}"))
        if self.iterative:
            s.execute(text("SET LOCAL hnsw.iterative_scan = relaxed_order"))
        literal = _vector_literal(query.astype(np.float32).tobytes())
        stmt = text(
            f"SELECT chunk_id, embedding <=> CAST(:q AS vector({int(dim)})) AS d FROM {table_name(dim)} "
            f"WHERE collection_id = ANY(:c) ORDER BY embedding <=> CAST(:q AS vector({int(dim)})) LIMIT :k"
        )
        params = {"q": literal, "c": list(collection_ids), "k": k}
        hits = [(int(i), 1.0 - float(d)) for i, d in s.execute(stmt, params)]
        if len(hits) < k and not self.iterative:
            # Before pgvector 0.8 an HNSW scan filters *after* collecting ef_search candidates,
            # so a small collection among large ones comes back short: rank it exactly.
            s.execute(text("SET LOCAL enable_indexscan = off"))
            hits = [(int(i), 1.0 - float(d)) for i, d in s.execute(stmt, params)]
        hits.sort(key=lambda h: -h[1])
        return hits


_chosen: weakref.WeakKeyDictionary[Engine, VectorIndex] = weakref.WeakKeyDictionary()
_choose_lock = threading.Lock()


def _sqlite_index(s: Session) -> VectorIndex:
    try:
        version = s.execute(text("SELECT vec_version()")).scalar()
    except OperationalError as exc:
        log.warning(
            "sqlite-vec is not available (%s): vector search falls back to exact numpy search; "
            "install pysqlite3-binary and sqlite-vec for indexed search",
            exc.orig,
        )
        return ExactIndex()
    log.info("vector search: sqlite-vec %s", version)
    return SqliteVecIndex()


def _postgres_index(s: Session) -> VectorIndex:
    version = s.execute(text("SELECT extversion FROM pg_extension WHERE extname = 'vector'")).scalar()
    if version is None:
        try:
            with s.begin_nested():
                s.execute(text("CREATE EXTENSION IF NOT EXISTS vector"))
        except DBAPIError as exc:
            log.warning(
                "pgvector is not available in this PostgreSQL (%s): vector search falls back to "
                "exact numpy search; install pgvector for indexed search",
                str(exc.orig).splitlines()[0],
            )
            return ExactIndex()
        version = s.execute(text("SELECT extversion FROM pg_extension WHERE extname = 'vector'")).scalar()
    parts = tuple(int(p) for p in str(version).split(".") if p.isdigit())
    log.info("vector search: pgvector %s", version)
    return PgVectorIndex(parts)


def vector_index(s: Session) -> VectorIndex:
    """The best vector index this session's database offers (chosen once per engine)."""
    engine = s.get_bind().engine
    with _choose_lock:
        found = _chosen.get(engine)
        if found is None:
            found = _sqlite_index(s) if engine.dialect.name == "sqlite" else _postgres_index(s)
            _chosen[engine] = found
        return found
