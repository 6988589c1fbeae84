"""Token budgets hold against requests that are still running: each reserves an upper bound of
its tokens at admission, narrows it once its prompt is known and settles it when it ends, so a
budget is passed by at most one request's worth however many run at once."""

from __future__ import annotations

import asyncio
from pathlib import Path

import anyio
import pytest

from llmos.config import load_config
from llmos.domain.tenancy import UsageRecord
from llmos.errors import BudgetExhausted, RateLimited
from llmos.security.principal import Principal
from llmos.security.service import Grant, Security, local_admin
from llmos.server.metering import upper_bound
from llmos.storage.db import Database

from .conftest import FakeClock, ServeFactory
from .test_tenant_views import Gate

ACME = Principal(tenant="acme", scopes=frozenset({"inference"}))


def _security(tmp_path: Path, database: Database, budget: int) -> Security:
    cfg = load_config(home=tmp_path / "home")
    security = Security(cfg, database, clock=FakeClock())
    security.create_tenant(local_admin(cfg), "acme", limits={"token_budget": budget, "budget_period": "day"})
    return security


def _end(security: Security, grant: Grant, tokens: int, rid: str) -> None:
    """What the metering middleware does when a request ends: the usage row, then the release."""
    security.record_usage(
        UsageRecord(
            request_id=rid,
            tenant="acme",
            operation="chat",
            status=200,
            time=security.now(),
            prompt_tokens=tokens,
        )
    )
    grant.finish(tokens)


def test_running_requests_reserve_their_tokens(tmp_path: Path, database: Database) -> None:
    s = _security(tmp_path, database, budget=100)

    def admit(max_tokens: int) -> Grant:
        return s.admit(ACME, max_tokens=max_tokens, estimate=lambda allowance: 10 + allowance)

    first, second = admit(40), admit(40)  # 50 + 50 reserved of 100
    assert s.limiter.reserved("tenant", "acme") == 100
    with pytest.raises(RateLimited) as held:
        admit(1)
    assert not isinstance(held.value, BudgetExhausted)  # not spent: retrying soon can work
    assert held.value.retry_after == 1.0 and "reserved by its 2 running requests" in str(held.value)

    first.refine(prompt_tokens=5, choices=1)  # the prompt is known: 5 + 40
    assert s.limiter.reserved("tenant", "acme") == 95
    third = admit(40)
    _end(s, first, 45, "r1")
    _end(s, second, 45, "r2")
    _end(s, third, 45, "r3")
    assert s.limiter.reserved("tenant", "acme") == 0
    # 135 charged against 100: over by less than one request's reservation (50), never by all three.
    assert s.store.tokens_since(s.now().replace(hour=0), tenant="acme") == 135
    with pytest.raises(BudgetExhausted):
        admit(1)


def test_no_reservation_without_a_budget(tmp_path: Path, database: Database) -> None:
    s = _security(tmp_path, database, budget=100)
    free = Principal(tenant="globex", scopes=frozenset({"inference"}))
    grants = [s.admit(free, max_tokens=10**6, estimate=lambda a: a) for _ in range(3)]
    assert [g.reserved for g in grants] == [0, 0, 0] and s.limiter.reserved("tenant", "globex") == 0


def test_upper_bound_of_a_request() -> None:
    assert upper_bound(b'{"prompt": "hi", "n": 3}', 10) == 24 + 30
    assert upper_bound(b'{"prompt": ["a", "b"], "n": 2}', 10) == 30 + 40
    assert upper_bound(b'{"prompt": [1, 2, 3]}', 10) == 21 + 10
    assert upper_bound(b'{"input": "hi"}', 0) == 15  # embeddings generate nothing
    assert upper_bound(b"not json", 7) == 8 + 7


@pytest.mark.anyio
async def test_over_http_a_running_request_holds_the_rest_of_the_budget(secured: ServeFactory) -> None:
    gate = Gate()
    s = await secured(engine_sleep=gate, load_extra={"step_cost_s": 0.001})
    key = await s.new_tenant("acme", limits={"token_budget": 250, "budget_period": "day"})
    running = asyncio.create_task(s.chat(key, max_tokens=245))  # its prompt + 245 holds the rest
    try:
        for _ in range(2000):
            if s.security.limiter.reserved("tenant", "acme") and s.kernel.ps():
                break
            gate.step()
            await asyncio.sleep(0.005)
        with anyio.fail_after(30):  # admitted by mistake, it would wait for the held engine
            held = await s.chat(key, max_tokens=4)
        assert held.status_code == 429 and held.json()["error"]["code"] == "rate_limit_exceeded"
        assert held.headers["retry-after"] == "1" and "x-should-retry" not in held.headers
    finally:
        gate.open()
    done = await running
    assert done.status_code == 200
    assert s.security.limiter.reserved("tenant", "acme") == 0
    # It used its whole reservation (the fake engine never stops early), passing the budget by
    # less than its own size; now the budget is spent, and says so.
    assert 250 <= done.json()["usage"]["total_tokens"] < 2 * 250
    spent = await s.chat(key, max_tokens=4)
    assert spent.status_code == 429 and spent.headers["x-should-retry"] == "false"
