"""Fixtures of the application tests: a migrated database on SQLite and PostgreSQL.

On PostgreSQL the tests work in a schema of their own (``llmos_apps_test``) so that other
suites that wipe the shared test database at the same time cannot disturb them.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text

from llmos.storage.db import Database, make_engine
from llmos.storage.migrate import upgrade

POSTGRES_URL = os.environ.get("LLMOS_TEST_POSTGRES_URL")
SCHEMA = "llmos_apps_test"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(
    params=[
        "sqlite",
        pytest.param("postgresql", marks=[pytest.mark.postgres, pytest.mark.integration]),
    ]
)
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    """A migrated, empty database on each backend."""
    if request.param == "sqlite":
        db = Database(make_engine(f"sqlite:///{tmp_path / 'llmos.db'}"))
        upgrade(db.engine)
        yield db
        db.dispose()
        return
    if not POSTGRES_URL:
        pytest.skip("LLMOS_TEST_POSTGRES_URL is not set (run .ci/postgres.sh)")
    admin = make_engine(POSTGRES_URL)
    with admin.begin() as conn:
        conn.execute(text(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE"))
        conn.execute(text(f"CREATE SCHEMA {SCHEMA}"))
    sep = "&" if "?" in POSTGRES_URL else "?"
    db = Database(make_engine(f"{POSTGRES_URL}{sep}options=-csearch_path%3D{SCHEMA}"))
    upgrade(db.engine)
    yield db
    db.dispose()
    with admin.begin() as conn:
        conn.execute(text(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE"))
    admin.dispose()
