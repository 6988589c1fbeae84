from __future__ import annotations

import itertools
import subprocess
import sys
import threading
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import inspect, text

from llmos.config import load_config
from llmos.domain.manifest import Manifest, ManifestFile
from llmos.errors import Conflict, InvalidRequest, SourceUnavailable
from llmos.storage.db import Database, make_engine, open_database
from llmos.storage.manifests import ManifestRepository
from llmos.storage.migrate import current_revision, downgrade, head_revision, upgrade


def test_sqlite_connections_use_wal_busy_timeout_and_foreign_keys(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'sub' / 'x.db'}", busy_timeout_ms=1234)
    with engine.connect() as conn:
        assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert conn.execute(text("PRAGMA busy_timeout")).scalar() == 1234
        assert conn.execute(text("PRAGMA foreign_keys")).scalar() == 1
    assert (tmp_path / "sub" / "x.db").exists()
    engine.dispose()


def test_postgres_urls_use_psycopg3() -> None:
    engine = make_engine("postgresql://u:p@127.0.0.1:5432/db")
    assert engine.dialect.driver == "psycopg"
    engine.dispose()


def test_bad_url_is_a_clear_error() -> None:
    with pytest.raises(InvalidRequest, match="invalid database URL"):
        make_engine("not a url")


def test_unreachable_postgres_says_cannot_reach(llmos_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LLMOS_DATABASE_URL", "postgresql+psycopg://u:secret@127.0.0.1:1/db?connect_timeout=3")
    with pytest.raises(SourceUnavailable, match="cannot reach the database") as exc:
        open_database(load_config())
    assert "secret" not in exc.value.message


def test_default_database_lives_under_home(llmos_home: Path) -> None:
    db = open_database(load_config())
    assert (llmos_home / "llmos.db").exists()
    assert current_revision(db.engine) == head_revision()
    db.dispose()


def test_migrations_are_idempotent_and_reversible(database: Database) -> None:
    assert current_revision(database.engine) == head_revision()
    upgrade(database.engine)  # no-op
    tables = set(inspect(database.engine).get_table_names())
    assert {"manifests", "manifest_files", "tags", "alembic_version"} <= tables
    downgrade(database.engine, "base")
    assert set(inspect(database.engine).get_table_names()) <= {"alembic_version"}
    upgrade(database.engine)
    assert current_revision(database.engine) == head_revision()


def test_the_head_read_from_the_files_is_alembics(database: Database) -> None:
    from llmos.storage.migrate import declared_head

    assert declared_head() == head_revision() is not None


def test_a_database_at_head_opens_without_alembic(llmos_home: Path) -> None:
    open_database(load_config()).dispose()  # made and migrated
    code = (
        "import sys; from llmos.config import load_config; from llmos.storage.db import open_database; "
        "open_database(load_config()).dispose(); print(sorted(m for m in sys.modules if m.startswith('alembic')))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


def test_a_database_from_a_newer_llmos_is_a_clear_error(llmos_home: Path) -> None:
    db = open_database(load_config())
    with db.engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '9999'"))
    db.dispose()
    with pytest.raises(Conflict, match="schema revision 9999, which this llmos does not know"):
        open_database(load_config())


def test_migration_chain_is_linear() -> None:
    from alembic.script import ScriptDirectory

    from llmos.storage.migrate import MIGRATIONS

    script = ScriptDirectory(str(MIGRATIONS))
    assert len(script.get_heads()) == 1
    revisions = list(script.walk_revisions())
    assert revisions[-1].down_revision is None
    for newer, older in itertools.pairwise(revisions):
        assert newer.down_revision == older.revision


def test_concurrent_writers_on_sqlite_wait_instead_of_failing(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'c.db'}"
    setup = Database(make_engine(url))
    upgrade(setup.engine)
    errors: list[BaseException] = []

    def writer(i: int) -> None:
        db = Database(make_engine(url))  # its own engine, like another process
        repo = ManifestRepository(db)
        try:
            for j in range(15):
                digest = f"{i:032x}{j:032x}"
                m = Manifest(
                    name=f"m{i}:{j}",
                    digest=digest,
                    size=1,
                    format="gguf",
                    files=(ManifestFile("f.gguf", digest, 1),),
                    created_at=datetime.now(UTC),
                )
                repo.save(m, f"m{i}", str(j))
        except BaseException as exc:  # collected and asserted below
            errors.append(exc)
        finally:
            db.dispose()

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert errors == []
    assert len(ManifestRepository(setup).tagged()) == 45
    setup.dispose()
