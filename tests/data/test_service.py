"""The data service on SQLite (sqlite-vec) and PostgreSQL (pgvector): documents, versions,
hybrid search, filters, and uploads that fail half-way."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import func, select, text

from llmos.data.service import DataService
from llmos.errors import Conflict, InvalidRequest, NotFound
from llmos.storage.data_vectors import SqliteVecIndex, VectorIndex, table_name
from llmos.storage.db import Database
from llmos.storage.documents import DocumentStore
from llmos.storage.rows_data import ChunkRow, DocumentRow

from .conftest import make_service
from .fakes import EmbeddingFailed, HashEmbedder

pytestmark = pytest.mark.anyio

DOCS = {
    "rockets.md": "# Rockets\n\nRockets burn fuel to reach orbit. A rocket engine pushes exhaust out.",
    "cooking.txt": "Bread needs flour, water, salt and yeast. Knead the dough and bake it hot.",
    "gardens.html": "<html><body><p>Tomatoes need sun and water. Prune the garden in spring.</p></body></html>",
}


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def _counts(db: Database) -> tuple[int, int, int]:
    """(documents, chunks, vector index rows) across the database."""
    with db.session() as s:
        docs = s.scalar(select(func.count(DocumentRow.id))) or 0
        chunks = s.scalar(select(func.count(ChunkRow.id))) or 0
        vectors = 0
        if db.engine.dialect.name == "sqlite":
            names = s.execute(text("SELECT name FROM sqlite_master WHERE sql LIKE '%USING vec0%'")).scalars()
        else:
            names = s.execute(
                text("SELECT tablename FROM pg_tables WHERE tablename LIKE 'data_vectors_%'")
            ).scalars()
        for name in list(names):
            vectors += s.execute(text(f"SELECT count(*) FROM {name}")).scalar() or 0
        return docs, chunks, vectors


async def _fill(service: DataService, tenant: str = "acme", collection: str = "kb") -> None:
    await service.create_collection(tenant, collection, chunk_tokens=32, chunk_overlap=4)
    for name, body in DOCS.items():
        await service.add_document(
            tenant, collection, name, body.encode(), metadata={"team": name.split(".")[0]}
        )


async def test_the_real_vector_index_is_used(service: DataService, database: Database) -> None:
    await _fill(service)
    kind = service.documents.index_kind()
    assert kind == ("sqlite-vec" if database.engine.dialect.name == "sqlite" else "pgvector")
    docs, chunks, vectors = _counts(database)
    assert docs == 3 and chunks >= 3 and vectors == chunks
    if kind == "pgvector":
        with database.session() as s:
            indexes = s.execute(
                text("SELECT indexdef FROM pg_indexes WHERE tablename = 'data_vectors_64'")
            ).scalars()
            assert any("hnsw" in d and "vector_cosine_ops" in d for d in indexes)
    else:
        with database.session() as s:
            assert s.execute(text("SELECT vec_version()")).scalar()


async def test_hybrid_search_ranks_the_matching_document_first(service: DataService) -> None:
    await _fill(service)
    for mode in ("hybrid", "vector", "keyword"):
        hits = await service.search("acme", ["kb"], "how do rockets reach orbit", top_k=3, mode=mode)
        assert hits, mode
        assert hits[0].chunk.document == "rockets.md", (mode, [h.chunk.document for h in hits])
        assert hits[0].chunk.collection == "kb" and hits[0].chunk.version == 1
        assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
    hybrid = await service.search("acme", ["kb"], "bread dough", top_k=3)
    assert hybrid[0].chunk.document == "cooking.txt"
    assert hybrid[0].vector_score is not None and hybrid[0].keyword_score is not None
    # Keyword search stems ("knead" / "kneading") and ignores query syntax characters.
    assert (await service.search("acme", ["kb"], 'kneading" OR (', mode="keyword"))[
        0
    ].chunk.document == "cooking.txt"


async def test_metadata_filters(service: DataService) -> None:
    await _fill(service)
    hits = await service.search("acme", ["kb"], "water", top_k=5, filters={"team": "gardens"})
    assert hits and {h.chunk.document for h in hits} == {"gardens.html"}
    hits = await service.search("acme", ["kb"], "water", top_k=5, filters={"team": ["gardens", "cooking"]})
    assert {h.chunk.document for h in hits} == {"gardens.html", "cooking.txt"}
    assert await service.search("acme", ["kb"], "water", filters={"team": "nobody"}) == []
    hits = await service.search("acme", ["kb"], "water", filters={"format": "html"})
    assert {h.chunk.document for h in hits} == {"gardens.html"}


async def test_reupload_makes_a_version_and_only_the_latest_is_searched(
    service: DataService, database: Database
) -> None:
    await service.create_collection("acme", "kb")
    v1 = await service.add_document("acme", "kb", "faq.txt", b"The office opens at nine.")
    v2 = await service.add_document("acme", "kb", "faq.txt", b"The office opens at ten on Mondays.")
    assert (v1.version, v2.version) == (1, 2) and v2.latest
    latest = await service.list_documents("acme", "kb")
    assert [(d.name, d.version) for d in latest] == [("faq.txt", 2)]
    every = await service.list_documents("acme", "kb", all_versions=True)
    assert [(d.version, d.latest) for d in every] == [(1, False), (2, True)]
    hits = await service.search("acme", ["kb"], "office opens", top_k=5)
    assert {(h.chunk.version, h.chunk.text) for h in hits} == {(2, "The office opens at ten on Mondays.")}
    # Deleting the latest version puts the previous one back into the index.
    await service.delete_document("acme", "kb", v2.id)
    hits = await service.search("acme", ["kb"], "office opens", top_k=5)
    assert [(h.chunk.version, h.chunk.document_id) for h in hits] == [(1, v1.id)]
    assert (await service.list_documents("acme", "kb"))[0].latest
    gone = await service.delete_named("acme", "kb", "faq.txt")
    assert [d.version for d in gone] == [1]
    assert _counts(database) == (0, 0, 0)


async def test_collections_are_per_tenant_and_validated(service: DataService, database: Database) -> None:
    await _fill(service, "acme")
    await service.create_collection("globex", "kb")
    with pytest.raises(Conflict):
        await service.create_collection("acme", "kb")
    with pytest.raises(InvalidRequest, match="invalid collection name"):
        await service.create_collection("acme", "../x")
    assert [c.name for c in await service.list_collections("globex")] == ["kb"]
    acme = await service.get_collection("acme", "kb")
    assert (acme.document_count, acme.dimensions) == (3, 64)
    assert await service.search("globex", ["kb"], "rockets") == []
    with pytest.raises(NotFound):
        await service.search("globex", ["missing"], "rockets")
    doc = (await service.list_documents("acme", "kb"))[0]
    with pytest.raises(NotFound):
        await service.get_document("globex", "kb", doc.id)
    with pytest.raises(NotFound):
        await service.delete_document("globex", "kb", doc.id)
    await service.delete_collection("acme", "kb")
    assert _counts(database) == (0, 0, 0)
    assert [c.name for c in await service.list_collections("globex")] == ["kb"]


async def test_bad_uploads_are_refused_with_reasons(service: DataService) -> None:
    await service.create_collection("acme", "kb")
    with pytest.raises(InvalidRequest, match="no text"):
        await service.add_document("acme", "kb", "empty.txt", b"   ")
    with pytest.raises(NotFound):
        await service.add_document("acme", "nope", "a.txt", b"x")
    with pytest.raises(InvalidRequest, match="invalid document name"):
        await service.add_document("acme", "kb", "../etc/passwd", b"x")
    with pytest.raises(InvalidRequest, match="top_k"):
        await service.search("acme", ["kb"], "x", top_k=0)


async def test_an_embedding_failure_on_chunk_7_leaves_nothing(database: Database, tmp_path: Path) -> None:
    service = make_service(database, HashEmbedder(fail_on=7), tmp_path)
    await service.create_collection("acme", "kb", chunk_tokens=16, chunk_overlap=0)
    body = " ".join(f"Sentence number {i} talks about topic {i}." for i in range(40)).encode()
    with pytest.raises(EmbeddingFailed):
        await service.add_document("acme", "kb", "long.txt", body)
    assert _counts(database) == (0, 0, 0)
    assert (await service.get_collection("acme", "kb")).dimensions is None


class _FailingIndex:
    """Delegates to the real index, but fails the moment vectors are written."""

    kind = "failing"

    def __init__(self, real: VectorIndex) -> None:
        self.real = real

    def add(self, s, dim, rows):  # type: ignore[no-untyped-def]
        self.real.add(s, dim, rows[:6])  # some vectors are written in the transaction...
        raise RuntimeError("index write failed on chunk 7")  # ...then it fails

    def remove(self, s, dim, chunk_ids):  # type: ignore[no-untyped-def]
        self.real.remove(s, dim, chunk_ids)

    def search(self, s, dim, query, collection_ids, k):  # type: ignore[no-untyped-def]
        return self.real.search(s, dim, query, collection_ids, k)


async def test_a_failure_while_storing_rolls_everything_back(
    service: DataService, database: Database
) -> None:
    await service.create_collection("acme", "kb", chunk_tokens=16, chunk_overlap=0)
    await service.add_document("acme", "kb", "keep.txt", b"This document stays whole.")
    before = _counts(database)
    real = DocumentStore(database)
    failing = DocumentStore(database, index=lambda s: _FailingIndex(real._index(s)))
    service.documents = failing
    body = " ".join(f"Sentence number {i} talks about topic {i}." for i in range(40)).encode()
    with pytest.raises(RuntimeError, match="chunk 7"):
        await service.add_document("acme", "kb", "long.txt", body)
    # A failing new version of an existing name leaves the old version latest and indexed.
    with pytest.raises(RuntimeError):
        await service.add_document("acme", "kb", "keep.txt", body)
    assert _counts(database) == before
    service.documents = real
    hits = await service.search("acme", ["kb"], "document stays whole")
    assert [(h.chunk.document, h.chunk.version) for h in hits] == [("keep.txt", 1)]


async def test_an_index_built_later_is_filled_from_stored_embeddings(tmp_path: Path) -> None:
    from llmos.storage.data_vectors import ExactIndex
    from llmos.storage.db import make_engine
    from llmos.storage.migrate import upgrade

    db = Database(make_engine(f"sqlite:///{tmp_path / 'x.db'}"))
    upgrade(db.engine)
    service = make_service(db, HashEmbedder(), tmp_path)
    service.documents = DocumentStore(db, index=lambda s: ExactIndex())
    await _fill(service)
    exact = await service.search("acme", ["kb"], "rockets orbit", mode="vector", top_k=3)
    assert exact[0].chunk.document == "rockets.md"
    index = SqliteVecIndex()
    service.documents = DocumentStore(db, index=lambda s: index)
    indexed = await service.search("acme", ["kb"], "rockets orbit", mode="vector", top_k=3)
    assert indexed[0].chunk.chunk_id == exact[0].chunk.chunk_id
    assert [round(h.score, 5) for h in indexed] == [round(h.score, 5) for h in exact]
    with db.session() as s:
        assert s.execute(text(f"SELECT count(*) FROM {table_name(64)}")).scalar() == _counts(db)[1]
    db.dispose()


async def test_postgres_without_pgvector_falls_back_to_exact_search(
    debian_postgres: Database, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    service = make_service(debian_postgres, HashEmbedder(), tmp_path)
    with caplog.at_level("WARNING"):
        await _fill(service)
    assert service.documents.index_kind() == "exact"
    assert any("falls back to exact" in r.message for r in caplog.records)
    hits = await service.search("acme", ["kb"], "how do rockets reach orbit", top_k=3)
    assert hits[0].chunk.document == "rockets.md"
    assert (await service.search("acme", ["kb"], "bread", mode="keyword"))[0].chunk.document == "cooking.txt"


async def test_sqlite_without_the_extension_falls_back_to_exact_search_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    import sqlite3

    from sqlalchemy import create_engine

    from llmos.storage.migrate import upgrade

    # An engine on the standard library's sqlite3, with no sqlite-vec loaded.
    engine = create_engine(f"sqlite:///{tmp_path / 'plain.db'}", module=sqlite3)
    db = Database(engine)
    upgrade(engine)
    service = make_service(db, HashEmbedder(), tmp_path)
    with caplog.at_level("WARNING"):
        await _fill(service)
    assert service.documents.index_kind() == "exact"
    assert any("sqlite-vec is not available" in r.message for r in caplog.records)
    hits = await service.search("acme", ["kb"], "how do rockets reach orbit", top_k=3)
    assert hits[0].chunk.document == "rockets.md" and hits[0].vector_score is not None
    db.dispose()


async def test_the_migration_downgrades_and_upgrades_again(service: DataService, database: Database) -> None:
    from sqlalchemy import inspect

    from llmos.storage.migrate import downgrade, upgrade

    await _fill(service)
    downgrade(database.engine, "0002")
    names = set(inspect(database.engine).get_table_names())
    assert not {n for n in names if n.startswith("data_")}, names
    upgrade(database.engine)
    assert {"data_collections", "data_documents", "data_chunks", "data_datasets"} <= set(
        inspect(database.engine).get_table_names()
    )


async def test_concurrent_uploads_each_get_their_own_version(
    service: DataService, database: Database
) -> None:
    import asyncio

    await service.create_collection("acme", "kb", chunk_tokens=16, chunk_overlap=0)
    bodies = [f"Revision {i} of the shared notes about topic {i}.".encode() for i in range(6)]
    docs = await asyncio.gather(
        *(service.add_document("acme", "kb", "notes.txt", b) for b in bodies),
        *(service.add_document("acme", "kb", f"other{i}.txt", b) for i, b in enumerate(bodies)),
    )
    versions = sorted(d.version for d in docs if d.name == "notes.txt")
    assert versions == [1, 2, 3, 4, 5, 6]
    latest = await service.list_documents("acme", "kb", name="notes.txt")
    assert [d.version for d in latest] == [6]
    docs_n, chunks_n, vectors_n = _counts(database)
    assert docs_n == 12
    # Only the latest version of each name is in the vector index.
    assert vectors_n == chunks_n - sum(d.chunk_count for d in docs if d.name == "notes.txt" and d.version < 6)
