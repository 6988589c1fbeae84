from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from llmos.config import load_config
from llmos.registry.registry import Registry
from llmos.storage.db import Database, open_database

from .helpers import make_registry


@pytest.fixture
def db(llmos_home: Path) -> Iterator[Database]:
    database = open_database(load_config())
    yield database
    database.dispose()


@pytest.fixture
def registry(llmos_home: Path, db: Database) -> Registry:
    return make_registry(llmos_home, db)
