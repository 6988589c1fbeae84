"""Several front-ends, one database: two Security services, each with its own connection pool
(as two ``llmos serve`` processes have), enforce one set of rate windows, concurrency limits and
budget reservations between them, on SQLite and on PostgreSQL."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from llmos.config import load_config
from llmos.domain.tenancy import UsageRecord
from llmos.errors import BudgetExhausted, RateLimited
from llmos.security.principal import Principal
from llmos.security.service import Grant, Security, local_admin
from llmos.storage.db import Database, make_engine

from .conftest import FakeClock

ACME = Principal(tenant="acme", scopes=frozenset({"inference"}))


@pytest.fixture
def front_ends(tmp_path: Path, database: Database) -> Iterator[tuple[Security, Security]]:
    """Two services on one database, sharing a clock; the second has its own engine and pool."""
    url = database.engine.url.render_as_string(hide_password=False)
    other = Database(make_engine(url))
    cfg = load_config(home=tmp_path / "home")
    clock = FakeClock()
    try:
        yield Security(cfg, database, clock=clock), Security(cfg, other, clock=clock)
    finally:
        other.dispose()


def _create(security: Security, limits: dict[str, object]) -> None:
    security.create_tenant(local_admin(security.config), "acme", limits=limits)


def _race(fronts: tuple[Security, Security], attempts: int, work: object) -> None:
    barrier = threading.Barrier(attempts)

    def run(i: int) -> None:
        barrier.wait()
        work(fronts[i % 2], i)  # type: ignore[operator]

    threads = [threading.Thread(target=run, args=(i,)) for i in range(attempts)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def test_requests_per_minute_hold_across_front_ends(front_ends: tuple[Security, Security]) -> None:
    a, b = front_ends
    _create(a, {"requests_per_minute": 5})
    admitted: list[int] = []
    refused: list[int] = []

    def work(front: Security, i: int) -> None:
        try:
            front.admit(ACME).finish(0)
            admitted.append(i)
        except RateLimited:
            refused.append(i)

    _race(front_ends, 12, work)
    assert len(admitted) == 5 and len(refused) == 7
    with pytest.raises(RateLimited):  # the window is the same seen from either side
        b.admit(ACME)
    a.limiter.clock.advance(60)  # type: ignore[attr-defined]
    b.admit(ACME).finish(0)


def test_concurrency_limit_holds_across_front_ends(front_ends: tuple[Security, Security]) -> None:
    a, b = front_ends
    _create(a, {"concurrent_requests": 2})
    first = a.admit(ACME)
    b.admit(ACME)
    with pytest.raises(RateLimited):
        a.admit(ACME)
    assert a.limiter.in_flight("tenant", "acme") == b.limiter.in_flight("tenant", "acme") == 2
    first.finish(0)
    b.admit(ACME)


def test_a_budget_is_never_overspent_by_concurrent_requests_on_two_front_ends(
    front_ends: tuple[Security, Security],
) -> None:
    a, _ = front_ends
    _create(a, {"token_budget": 1000, "budget_period": "day"})
    lock = threading.Lock()
    outcomes: dict[str, int] = {"admitted": 0, "held": 0, "spent": 0}

    def work(front: Security, i: int) -> None:
        for j in range(6):
            try:
                grant: Grant = front.admit(ACME, max_tokens=90, estimate=lambda allowance: 10 + allowance)
            except BudgetExhausted:
                with lock:
                    outcomes["spent"] += 1
                return
            except RateLimited:
                with lock:
                    outcomes["held"] += 1
                continue
            with lock:
                outcomes["admitted"] += 1
            # The request uses all it reserved: its usage row first, then the release.
            front.record_usage(
                UsageRecord(
                    request_id=f"r{i}-{j}",
                    tenant="acme",
                    operation="chat",
                    status=200,
                    time=front.now(),
                    prompt_tokens=10,
                    completion_tokens=90,
                )
            )
            grant.finish(100)

    _race(front_ends, 8, work)
    used = a.store.tokens_since(a.now().replace(hour=0, minute=0, second=0, microsecond=0), tenant="acme")
    # 100 tokens per request, 1000 in the budget: exactly 10 requests ran, never an 11th.
    assert used == 1000 and outcomes["admitted"] == 10
    assert outcomes["held"] + outcomes["spent"] > 0
    assert a.limiter.reserved("tenant", "acme") == 0
