"""The database engine and sessions: SQLite (WAL, busy timeout) by default, PostgreSQL by URL."""

from __future__ import annotations

import importlib.util
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from llmos.config import Config
from llmos.errors import InvalidRequest, SourceUnavailable

log = logging.getLogger(__name__)

SQLITE_BUSY_TIMEOUT_MS = 10_000
"""How long a SQLite writer waits for another process's lock before failing."""


def make_engine(url: str, *, busy_timeout_ms: int = SQLITE_BUSY_TIMEOUT_MS, echo: bool = False) -> Engine:
    """An engine for ``url``. SQLite gets WAL, a busy timeout and foreign keys on every connection;
    ``postgresql://`` URLs are routed to psycopg 3. Raises InvalidRequest for a malformed URL."""
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise InvalidRequest(
            f"invalid database URL: {exc}; set LLMOS_DATABASE_URL", param="database_url"
        ) from exc
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(
            parsed,
            echo=echo,
            module=sqlite_module(),
            connect_args={"timeout": busy_timeout_ms / 1000, "check_same_thread": False},
        )
        _sqlite_pragmas(engine, busy_timeout_ms)
        return engine
    return create_engine(parsed, echo=echo, pool_pre_ping=True)


def sqlite_module() -> Any:
    """pysqlite3 where installed (Linux wheels): the same DB-API as ``sqlite3``, able to load
    extensions, which pyenv's and some distributions' ``sqlite3`` are built without. sqlite-vec
    (vector search, see ``storage/data_vectors.py``) needs it."""
    try:
        from pysqlite3 import dbapi2  # type: ignore[import-untyped,import-not-found,unused-ignore]
    except ImportError:
        import sqlite3 as dbapi2
    return dbapi2


def sqlite_vec_path() -> str | None:
    """Where the sqlite-vec package keeps its loadable extension (``vec0``), found without
    importing the package: its ``__init__`` imports numpy, ~0.3 s a CLI command should not pay."""
    spec = importlib.util.find_spec("sqlite_vec")
    if spec is None or spec.origin is None:
        return None
    return str(Path(spec.origin).with_name("vec0"))


def _load_sqlite_vec(dbapi_conn: Any) -> None:
    try:
        path = sqlite_vec_path()
        if path is None:
            log.debug("sqlite-vec is not installed")
            return
        dbapi_conn.enable_load_extension(True)
        try:
            dbapi_conn.load_extension(path)
        finally:
            dbapi_conn.enable_load_extension(False)
    except Exception as exc:  # an optional capability: vector search falls back without it
        log.debug("sqlite-vec not loaded: %s", exc)


def _sqlite_pragmas(engine: Engine, busy_timeout_ms: int) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        cursor = dbapi_conn.cursor()
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA synchronous=NORMAL")
        finally:
            cursor.close()
        _load_sqlite_vec(dbapi_conn)


class Database:
    """An engine plus its session factory; ``session()`` is one transaction."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.sessions: sessionmaker[Session] = sessionmaker(engine, expire_on_commit=False)

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A session whose work commits on success and rolls back on any exception."""
        with self.sessions.begin() as session:
            yield session

    def dispose(self) -> None:
        self.engine.dispose()


def open_database(config: Config, *, migrate: bool = True) -> Database:
    """The database named by ``config.database_url``, migrated to the newest schema.

    Raises SourceUnavailable when the server cannot be reached.
    """
    from llmos.storage.migrate import upgrade

    db = Database(make_engine(config.database_url))
    if migrate:
        try:
            upgrade(db.engine)
        except OperationalError as exc:
            db.dispose()
            raise SourceUnavailable(
                f"cannot reach the database {make_url(config.database_url).render_as_string(hide_password=True)}: "
                f"{exc.orig}; check LLMOS_DATABASE_URL",
                param="database_url",
            ) from exc
    return db
