"""Apply the Alembic migrations shipped inside the package; no ``alembic.ini`` needed.

Several processes may open a fresh database at the same moment (two first commands in two
terminals, a server and a CLI): migrating is serialized across processes, by an exclusive lock
on a file beside a SQLite database and by an advisory lock on PostgreSQL, and whoever gets the
lock second finds the schema at head and does nothing.

Alembic is imported only when there is something to do: a database already at the newest
revision is recognised by reading its ``alembic_version`` row and the migration files'
``revision`` lines, which spares every CLI command that opens the database ~0.2 s of imports.
"""

from __future__ import annotations

import contextlib
import logging
import re
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Engine, text
from sqlalchemy.exc import DBAPIError

from llmos.errors import Conflict

if TYPE_CHECKING:
    from alembic.config import Config as AlembicConfig

log = logging.getLogger(__name__)

MIGRATIONS = Path(__file__).with_name("migrations")
_lock = threading.Lock()
_REVISION = re.compile(r"^revision(?:\s*:\s*str)?\s*=\s*[\"'](\w+)[\"']\s*$", re.M)
_DOWN_REVISION = re.compile(r"^down_revision(?:\s*:[^=]*)?\s*=\s*(?:[\"'](\w+)[\"']|None)\s*$", re.M)


def alembic_config(engine: Engine) -> AlembicConfig:
    from alembic.config import Config as AlembicConfig

    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["engine"] = engine
    return cfg


def head_revision() -> str | None:
    from alembic.script import ScriptDirectory

    return ScriptDirectory(str(MIGRATIONS)).get_current_head()


def declared_head() -> str | None:
    """The head revision as the migration files declare it (``revision = "0004"``,
    ``down_revision = "0003"``), read without Alembic; None unless they form one chain."""
    revisions: dict[str, str | None] = {}
    for script in sorted((MIGRATIONS / "versions").glob("*.py")):
        source = script.read_text(encoding="utf-8")
        rev, down = _REVISION.search(source), _DOWN_REVISION.search(source)
        if rev is None and down is None:
            continue  # __init__.py
        if rev is None or down is None:
            return None
        revisions[rev.group(1)] = down.group(1)
    heads = set(revisions) - {d for d in revisions.values() if d is not None}
    return heads.pop() if len(heads) == 1 else None


def _known_revisions() -> set[str]:
    return {
        m.group(1)
        for script in (MIGRATIONS / "versions").glob("*.py")
        if (m := _REVISION.search(script.read_text(encoding="utf-8")))
    }


def current_revision(engine: Engine) -> str | None:
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def _stored_revision(engine: Engine) -> str | None:
    """The database's ``alembic_version`` row; None when the table is missing (a new database)
    or holds several heads. A database that cannot be reached raises as Alembic would."""
    try:
        with engine.connect() as conn:
            rows = conn.execute(text("SELECT version_num FROM alembic_version")).scalars().all()
    except DBAPIError as exc:
        if "alembic_version" not in str(exc.orig):
            raise
        return None
    return str(rows[0]) if len(rows) == 1 else None


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
        if revision == "head":
            head = declared_head()
            if head is not None and _stored_revision(engine) == head:
                return
            if current_revision(engine) == head_revision():
                return
        from alembic import command
        from alembic.util.exc import CommandError

        log.info("migrating database to %s", revision)
        try:
            command.upgrade(alembic_config(engine), revision)
        except CommandError as exc:
            stored = _stored_revision(engine)
            if stored is None or stored in _known_revisions():
                raise
            where = engine.url.render_as_string(hide_password=True)
            raise Conflict(
                f"the database {where} has schema revision {stored}, which this llmos does not know (its "
                f"newest is {head_revision()}): a newer llmos made it. Run that version, or point "
                "LLMOS_HOME or LLMOS_DATABASE_URL at another database",
                param="database_url",
            ) from exc


def downgrade(engine: Engine, revision: str) -> None:
    from alembic import command

    with migration_lock(engine):
        command.downgrade(alembic_config(engine), revision)
