"""The storage tests run against SQLite always and PostgreSQL when LLMOS_TEST_POSTGRES_URL is set
(CI sets it after running ``.ci/postgres.sh``)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import MetaData

from llmos.storage.db import Database, make_engine
from llmos.storage.migrate import upgrade

POSTGRES_URL = os.environ.get("LLMOS_TEST_POSTGRES_URL")


def _wipe(db: Database) -> None:
    meta = MetaData()
    meta.reflect(db.engine)
    meta.drop_all(db.engine)


@pytest.fixture(
    params=[
        "sqlite",
        pytest.param("postgresql", marks=[pytest.mark.postgres, pytest.mark.integration]),
    ]
)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'llmos.db'}"
    if not POSTGRES_URL:
        pytest.skip("LLMOS_TEST_POSTGRES_URL is not set (run .ci/postgres.sh)")
    return POSTGRES_URL


@pytest.fixture
def database(database_url: str) -> Iterator[Database]:
    """A migrated, empty database on each backend."""
    db = Database(make_engine(database_url))
    _wipe(db)
    upgrade(db.engine)
    yield db
    _wipe(db)
    db.dispose()
