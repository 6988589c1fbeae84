"""Processes that open a fresh database at the same moment (two first commands in two
terminals) all get the schema: migrating is locked across processes, not only threads.

Before, both saw no schema and both created it: "table manifests already exists", exit 6."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import postgres_schema  # tests/ is on sys.path
from llmos.storage.db import Database, make_engine
from llmos.storage.migrate import current_revision, head_revision

POSTGRES_URL = os.environ.get("LLMOS_TEST_POSTGRES_URL")
PROCESSES = 4
OPEN_WHEN_TOLD = """
import os, sys, time, pathlib
from llmos.storage.db import Database, make_engine
from llmos.storage.migrate import upgrade
engine = make_engine(sys.argv[1])
go = pathlib.Path(sys.argv[2])
(go.parent / f"ready-{os.getpid()}").touch()
while not go.exists():
    time.sleep(0.001)
upgrade(engine)
"""


@pytest.fixture(
    params=["sqlite", pytest.param("postgresql", marks=[pytest.mark.postgres, pytest.mark.integration])]
)
def fresh_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """The URL of a database nobody migrated yet (on PostgreSQL, a schema of its own)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'home' / 'llmos.db'}"
        return
    if not POSTGRES_URL:
        pytest.skip("LLMOS_TEST_POSTGRES_URL is not set (run .ci/postgres.sh)")
    with postgres_schema(POSTGRES_URL, "race") as (_, url):
        yield url


def test_processes_opening_a_fresh_database_together_all_succeed(fresh_url: str, tmp_path: Path) -> None:
    go = tmp_path / "go"
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", OPEN_WHEN_TOLD, fresh_url, str(go)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for _ in range(PROCESSES)
    ]
    for _ in range(60_000):  # released together, once every process has imported llmos
        if len(list(tmp_path.glob("ready-*"))) == PROCESSES or any(p.poll() is not None for p in procs):
            break
        time.sleep(0.002)
    go.touch()
    results = [(p.wait(120), p.stderr.read().decode() if p.stderr else "") for p in procs]
    for p in procs:
        for stream in (p.stdout, p.stderr):
            if stream is not None:
                stream.close()
    assert [code for code, _ in results] == [0] * PROCESSES, "\n".join(err[-800:] for _, err in results)
    db = Database(make_engine(fresh_url))
    try:
        assert current_revision(db.engine) == head_revision()
    finally:
        db.dispose()
