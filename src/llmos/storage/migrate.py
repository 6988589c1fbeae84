"""Apply the Alembic migrations shipped inside the package; no ``alembic.ini`` needed.

Several processes may open a fresh database at the same moment (two first commands in two
terminals, a server and a CLI): migrating is serialized across processes, by an exclusive lock
on a file beside a SQLite database and by an advisory lock on PostgreSQL, and whoever gets the
lock second finds the schema at head and does nothing.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Iterator
from pathlib import Path

from alembic import command
from alembic.config import Config as AlembicConfig
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, text

log = logging.getLogger(__name__)

MIGRATIONS = Path(__file__).with_name("migrations")
_lock = threading.Lock()


def alembic_config(engine: Engine) -> AlembicConfig:
    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["engine"] = engine
    return cfg


def head_revision() -> str | None:
    return ScriptDirectory(str(MIGRATIONS)).get_current_head()


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


PG_LOCK_KEY = 0x6C6C6D6F73  # "llmos"
"""The PostgreSQL advisory lock that serializes migrations of one database."""


@contextlib.contextmanager
def migration_lock(engine: Engine) -> Iterator[None]:
    """Hold the database's migration lock: this process's threads and other processes wait."""
    with _lock, contextlib.ExitStack() as stack:
        backend = engine.url.get_backend_name()
        database = engine.url.database
        if backend == "sqlite" and database and database != ":memory:":
            stack.enter_context(
                _file_lock(Path(database).expanduser().with_name(Path(database).name + ".migrate.lock"))
            )
        elif backend == "postgresql":
            conn = stack.enter_context(engine.connect())
            conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": PG_LOCK_KEY})
            stack.callback(lambda: conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": PG_LOCK_KEY}))
        yield


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    try:
        import fcntl
    except ImportError:  # Windows: one process at a time is the user's to arrange
        yield
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a+b") as f:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f.fileno(), fcntl.LOCK_UN)


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Bring the schema up to ``revision`` (idempotent; a no-op when already there), safely
    while other processes open the same database. The lock is taken before the first connection:
    a fresh SQLite file's first connection switches it to WAL, which two at once cannot."""
    with migration_lock(engine):
        if revision == "head" and current_revision(engine) == head_revision():
            return  # already there, maybe migrated by another process while this one waited
        log.info("migrating database to %s", revision)
        command.upgrade(alembic_config(engine), revision)


def downgrade(engine: Engine, revision: str) -> None:
    with migration_lock(engine):
        command.downgrade(alembic_config(engine), revision)
