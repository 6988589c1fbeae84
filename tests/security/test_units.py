"""The pieces on their own: key material, quotas, periods, the rate limiter."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from llmos.config import load_config
from llmos.domain.tenancy import Quota
from llmos.errors import InvalidRequest, RateLimited
from llmos.security.keys import display_prefix, generate_key, hash_key, looks_like_key, matches
from llmos.security.limiter import Limiter, Subject
from llmos.security.periods import period_end, period_start
from llmos.security.service import auth_required, is_loopback
from llmos.storage.db import Database
from llmos.storage.limits import LimitsRepository

from .conftest import FakeClock


def test_keys_are_random_hashed_and_prefixed() -> None:
    a, b = generate_key(), generate_key()
    assert a.secret != b.secret and a.secret.startswith("sk-llmos-") and len(a.secret) == 9 + 43
    assert a.prefix == a.secret[:17] == display_prefix(a.secret)
    assert a.hash == hash_key(a.secret) and a.secret not in a.hash
    assert matches(a.secret, a.hash) and not matches(b.secret, a.hash)
    assert looks_like_key(a.secret) and not looks_like_key("sk-llmos-") and not looks_like_key("sk-openai")


def test_quota_validation_and_updates() -> None:
    q = Quota.from_json({"requests_per_minute": 5})
    assert q.updated({"requests_per_minute": None, "token_budget": 10}) == Quota(token_budget=10)
    for bad in ({"requests_per_minute": 0}, {"token_budget": -1}, {"nope": 1}, {"budget_period": "year"}):
        with pytest.raises(InvalidRequest):
            Quota.from_json(bad)
    assert Quota().unlimited and not q.unlimited


def test_budget_periods_on_the_utc_calendar() -> None:
    now = datetime(2026, 12, 31, 18, 30, tzinfo=UTC)  # a Thursday
    assert period_start(now, "day") == datetime(2026, 12, 31, tzinfo=UTC)
    assert period_end(now, "day") == datetime(2027, 1, 1, tzinfo=UTC)
    assert period_start(now, "week") == datetime(2026, 12, 28, tzinfo=UTC)
    assert period_end(now, "week") == datetime(2027, 1, 4, tzinfo=UTC)
    assert period_start(now, "month") == datetime(2026, 12, 1, tzinfo=UTC)
    assert period_end(now, "month") == datetime(2027, 1, 1, tzinfo=UTC)


def test_auth_modes() -> None:
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("10.0.0.5")
    assert not auth_required(load_config(auth="auto", host="127.0.0.1"))
    assert auth_required(load_config(auth="auto", host="0.0.0.0"))
    assert auth_required(load_config(auth="required", host="127.0.0.1"))
    assert not auth_required(load_config(auth="off", host="0.0.0.0"))


def test_limiter_counts_nothing_when_one_subject_refuses(database: Database) -> None:
    clock = FakeClock(0.0)
    limiter = Limiter(clock, LimitsRepository(database))
    tenant = Subject("tenant", "acme", Quota(requests_per_minute=2))
    key = Subject("key", "k1", Quota(requests_per_minute=1))
    limiter.admit([tenant, key]).finish(0)
    with pytest.raises(RateLimited) as refused:
        limiter.admit([tenant, key])
    assert refused.value.retry_after == 60.0
    other = Subject("key", "k2", Quota())
    limiter.admit([tenant, other]).finish(0)  # the refused request was not counted for the tenant
    with pytest.raises(RateLimited):
        limiter.admit([tenant, other])


def test_limiter_tokens_and_concurrency_windows(database: Database) -> None:
    clock = FakeClock(0.0)
    limiter = Limiter(clock, LimitsRepository(database))
    s = Subject("tenant", "t", Quota(tokens_per_minute=100, concurrent_requests=2))
    a = limiter.admit([s])
    b = limiter.admit([s])
    with pytest.raises(RateLimited):
        limiter.admit([s])
    assert limiter.in_flight("tenant", "t") == 2
    clock.advance(10)
    a.finish(60)
    a.finish(60)  # idempotent
    clock.advance(10)
    b.finish(60)
    with pytest.raises(RateLimited) as over:
        limiter.admit([s])
    assert over.value.retry_after == pytest.approx(50.0)  # when the first 60 tokens age out
    clock.advance(49)
    with pytest.raises(RateLimited):
        limiter.admit([s])
    clock.advance(1)
    limiter.admit([s]).finish(0)
    assert limiter.in_flight("tenant", "t") == 0


def test_a_dead_front_ends_holds_expire(database: Database) -> None:
    clock = FakeClock(0.0)
    limiter = Limiter(clock, LimitsRepository(database), lease_s=120.0)
    s = Subject("tenant", "t", Quota(concurrent_requests=1))
    limiter.admit([s])  # never finished: its front-end died
    with pytest.raises(RateLimited):
        limiter.admit([s])
    clock.advance(120)
    limiter.admit([s]).finish(0)
