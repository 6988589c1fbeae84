"""Data tests run on SQLite (sqlite-vec, through pysqlite3) and on PostgreSQL with pgvector, which
a session-wide ``pgserver`` (the PyPI package ships PostgreSQL with pgvector) provides; its tests
are skipped when it cannot start. Debian's PostgreSQL at LLMOS_TEST_POSTGRES_URL has no pgvector:
tests of the exact fallback use it."""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from llmos.data.datasets import DatasetService
from llmos.data.service import DataService
from llmos.data.tokens import ApproxTokenizer
from llmos.storage.blobs import BlobStore
from llmos.storage.data_datasets import DatasetStore
from llmos.storage.db import Database, make_engine
from llmos.storage.documents import DocumentStore
from llmos.storage.migrate import upgrade

from .fakes import HashEmbedder

DEBIAN_POSTGRES_URL = os.environ.get("LLMOS_TEST_POSTGRES_URL")


@pytest.fixture(scope="session")
def pgvector_server() -> Iterator[str]:
    """The URL of a PostgreSQL server with pgvector (pgserver), for the whole session.

    Its data lives outside pytest's temp folders: a concurrent pytest run prunes old ones."""
    pgdata = Path(tempfile.mkdtemp(prefix="llmos-pgserver-"))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import pgserver

            server: Any = pgserver.get_server(pgdata, cleanup_mode="stop")
            server.psql("CREATE EXTENSION IF NOT EXISTS vector;")
            version = server.psql("SELECT extversion FROM pg_extension WHERE extname = 'vector';")
    except Exception as exc:  # pgserver is an optional dev tool: no server, no pgvector tests
        shutil.rmtree(pgdata, ignore_errors=True)
        pytest.skip(f"pgserver could not start PostgreSQL with pgvector: {exc}")
    if "0." not in version:
        pytest.skip(f"pgserver's PostgreSQL has no pgvector: {version}")
    uri = server.get_uri()
    yield uri.replace("postgresql://", "postgresql+psycopg://", 1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        server.cleanup()
    shutil.rmtree(pgdata, ignore_errors=True)


def _fresh_database(server_url: str) -> tuple[str, str]:
    """A new, empty database on ``server_url``'s server: (its URL, its name)."""
    name = f"llmos_{uuid.uuid4().hex[:12]}"
    admin = create_engine(server_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return make_url(server_url).set(database=name).render_as_string(hide_password=False), name


def _drop_database(server_url: str, name: str) -> None:
    admin = create_engine(server_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture(
    params=["sqlite", pytest.param("pgvector", marks=[pytest.mark.postgres, pytest.mark.integration])]
)
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    """A migrated, empty database: SQLite with sqlite-vec, or PostgreSQL with pgvector."""
    if request.param == "sqlite":
        db = Database(make_engine(f"sqlite:///{tmp_path / 'llmos.db'}"))
        upgrade(db.engine)
        yield db
        db.dispose()
        return
    server = request.getfixturevalue("pgvector_server")
    url, name = _fresh_database(server)
    db = Database(make_engine(url))
    upgrade(db.engine)
    yield db
    db.dispose()
    _drop_database(server, name)


@pytest.fixture
def debian_postgres() -> Iterator[Database]:
    """A migrated schema on a PostgreSQL *without* pgvector (Debian's, LLMOS_TEST_POSTGRES_URL);
    a schema of its own, as the test role may not create databases."""
    if not DEBIAN_POSTGRES_URL:
        pytest.skip("LLMOS_TEST_POSTGRES_URL is not set (run .ci/postgres.sh)")
    schema = f"llmos_data_{uuid.uuid4().hex[:12]}"
    admin = create_engine(DEBIAN_POSTGRES_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    except Exception as exc:
        admin.dispose()
        pytest.skip(f"cannot create a schema on {DEBIAN_POSTGRES_URL}: {exc}")
    url = make_url(DEBIAN_POSTGRES_URL).update_query_dict({"options": f"-csearch_path={schema}"})
    db = Database(make_engine(url.render_as_string(hide_password=False)))
    upgrade(db.engine)
    yield db
    db.dispose()
    with admin.connect() as conn:
        conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
    admin.dispose()


@pytest.fixture
def embedder() -> HashEmbedder:
    return HashEmbedder()


def make_service(db: Database, embedder: HashEmbedder, tmp_path: Path) -> DataService:
    tok = ApproxTokenizer()
    return DataService(
        DocumentStore(db),
        DatasetService(DatasetStore(db), BlobStore(tmp_path / "blobs", tmp_path / "tmp"), tok),
        embedder,
        tok,
        default_embedding_model="fake:embed",
    )


@pytest.fixture
def service(database: Database, embedder: HashEmbedder, tmp_path: Path) -> DataService:
    return make_service(database, embedder, tmp_path)
