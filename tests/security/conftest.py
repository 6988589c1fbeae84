"""An llmos server over fake engines with security on, on SQLite and (when
LLMOS_TEST_POSTGRES_URL is set) PostgreSQL, with an injected wall clock: no test sleeps."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import inspect

from conftest import postgres_schema  # tests/ is on sys.path
from kernel.fakes import MemoryRegistry, inventory, manifest
from llmos.config import load_config
from llmos.engine.base import Engine
from llmos.engine.fake import FakeEngine
from llmos.kernel import Kernel, build_kernel
from llmos.security.service import Security, local_admin
from llmos.server import create_app
from llmos.storage.db import Database, make_engine
from llmos.storage.migrate import upgrade

POSTGRES_URL = os.environ.get("LLMOS_TEST_POSTGRES_URL")
START = datetime(2026, 11, 25, 12, 0, tzinfo=UTC).timestamp()


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class FakeClock:
    """Seconds since the epoch, moved by the test."""

    def __init__(self, t: float = START) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t

    def advance(self, seconds: float) -> None:
        self.t += seconds


@pytest.fixture(
    params=[
        "sqlite",
        pytest.param("postgresql", marks=[pytest.mark.postgres, pytest.mark.integration]),
    ]
)
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    """A migrated, empty database. On PostgreSQL each test gets its own schema, so tests of
    other areas running at the same time on the same server never see these tables.

    The search path is that schema *alone*: with ``public`` behind it, a migrated ``public``
    (the storage tests migrate and wipe it, maybe in another process at that very moment)
    made Alembic see ``public.alembic_version`` at head and skip the migration, so the test ran
    on ``public``'s shared tables — another test's tenants, usage rows and wipes included."""
    if request.param == "sqlite":
        db = Database(make_engine(f"sqlite:///{tmp_path / 'llmos.db'}"))
        upgrade(db.engine)
        yield db
        db.dispose()
        return
    if not POSTGRES_URL:
        pytest.skip("LLMOS_TEST_POSTGRES_URL is not set (run .ci/postgres.sh)")
    with postgres_schema(POSTGRES_URL, "sec") as (schema, url):
        db = Database(make_engine(url))
        try:
            upgrade(db.engine)
            if "tenants" not in inspect(db.engine).get_table_names(schema=schema):
                raise RuntimeError(f"the migration did not create the tables in schema {schema!r}")
            yield db
        finally:
            db.dispose()


@dataclass
class Served:
    app: FastAPI
    kernel: Kernel
    security: Security
    clock: FakeClock
    client: httpx.AsyncClient
    admin_key: str
    keys: dict[str, str] = field(default_factory=dict)
    key_ids: dict[str, str] = field(default_factory=dict)

    @staticmethod
    def auth(key: str) -> dict[str, str]:
        return {"authorization": f"Bearer {key}"}

    async def chat(
        self, key: str | None, model: str = "fake:1", headers: dict[str, str] | None = None, **body: Any
    ) -> httpx.Response:
        headers = {**(self.auth(key) if key else {}), **(headers or {})}
        payload = {"model": model, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4, **body}
        return await self.client.post("/v1/chat/completions", json=payload, headers=headers)

    async def new_tenant(self, name: str, scopes: list[str] | None = None, **body: Any) -> str:
        """Create tenant ``name`` (as admin) and a key for it (the default scopes unless given);
        returns the key's secret."""
        r = await self.client.post(
            "/api/tenants", json={"name": name, **body}, headers=self.auth(self.admin_key)
        )
        assert r.status_code == 201, r.text
        key: dict[str, Any] = {"tenant": name} if scopes is None else {"tenant": name, "scopes": scopes}
        r = await self.client.post("/api/keys", json=key, headers=self.auth(self.admin_key))
        assert r.status_code == 201, r.text
        self.keys[name] = r.json()["key"]
        self.key_ids[name] = r.json()["id"]
        return str(r.json()["key"])


ServeFactory = Callable[..., Awaitable[Served]]
TENANT_ADMIN = ["inference", "embeddings", "models:read", "data", "keys:write"]
"""The scopes of a tenant's own key manager: the defaults plus making keys bounded by it."""


@pytest.fixture
async def secured(tmp_path: Path, database: Database) -> AsyncIterator[ServeFactory]:
    """``await secured(auth="required", **settings)`` → a running app with an admin key."""
    stack: list[tuple[Any, httpx.AsyncClient]] = []

    async def make(
        *,
        models: tuple[str, ...] = ("fake:1", "other:1"),
        engine_sleep: Callable[[float], None] | None = None,
        load_extra: dict[str, Any] | None = None,
        **settings: Any,
    ) -> Served:
        """``engine_sleep`` and ``load_extra`` (e.g. ``step_cost_s``) let a test hold the fake
        engines' steps, so requests stay running while it looks."""
        settings.setdefault("auth", "required")
        cfg = load_config(home=tmp_path / "home", n_slots=16, n_ctx=16 * 512, **settings)
        clock = FakeClock()
        security = Security(cfg, database, clock=clock)

        def engine_factory(backend: str) -> Engine:
            return FakeEngine(sleep=engine_sleep) if engine_sleep is not None else FakeEngine()

        kernel = build_kernel(
            cfg,
            registry=MemoryRegistry(tmp_path, [manifest(n) for n in models], [manifest("cat:1")]),
            engine_factory=engine_factory,
            inventory=inventory(),
            database=database,
            security=security,
            wall_clock=clock,
            load_extra=load_extra or {},
        )
        _, admin_key = security.create_key(local_admin(cfg), admin=True, name="bootstrap")
        app = create_app(kernel, drain_timeout=1.0)
        lifespan = app.router.lifespan_context(app)
        await lifespan.__aenter__()
        client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test", timeout=30)
        stack.append((lifespan, client))
        return Served(app, kernel, security, clock, client, admin_key)

    yield make
    for lifespan, client in reversed(stack):
        await client.aclose()
        await lifespan.__aexit__(None, None, None)
