"""Two real ``llmos serve`` processes on one PostgreSQL database (and one home, as front-ends
behind a load balancer share the model store) answer as one would, over HTTP: a model imported
through one is served by the other; a tenant made on one gets keys on the other; requests per
minute, concurrent requests and the token budget count requests on both; a key revoked on one is
refused by the other at once."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from conftest import postgres_schema  # tests/ is on sys.path
from server.test_integration_openai import RealServer, start_server_with, stop_server

pytestmark = [pytest.mark.integration, pytest.mark.postgres]

POSTGRES_URL = os.environ.get("LLMOS_TEST_POSTGRES_URL")
ADMIN_KEY = "sk-llmos-two-front-ends-admin-0123456789abcdef"
ADMIN = {"authorization": f"Bearer {ADMIN_KEY}"}
MODEL = "smollm2:135m"


@pytest.fixture(scope="module")
def front_ends(
    tmp_path_factory: pytest.TempPathFactory, smollm2_gguf: Path
) -> Iterator[tuple[RealServer, RealServer]]:
    if not POSTGRES_URL:
        pytest.skip("LLMOS_TEST_POSTGRES_URL is not set (run .ci/postgres.sh)")
    with postgres_schema(POSTGRES_URL, "fronts") as (_, url):  # both servers migrate it at start
        yield from _two_servers(url, tmp_path_factory.mktemp("front-ends") / "home", smollm2_gguf)


def _two_servers(url: str, home: Path, gguf: Path) -> Iterator[tuple[RealServer, RealServer]]:
    settings = {
        "LLMOS_DATABASE_URL": url,
        "LLMOS_AUTH": "required",
        "LLMOS_ADMIN_KEY": ADMIN_KEY,
        "LLMOS_N_SLOTS": "4",
        "LLMOS_N_CTX": "4096",
    }
    servers: list[RealServer] = []
    try:
        servers.append(start_server_with(home, settings))
        servers.append(start_server_with(home, settings))
        r = httpx.post(
            servers[0].url + "/api/import",
            json={"path": str(gguf), "model": MODEL, "stream": False},
            headers=ADMIN,
            timeout=300,
        )
        assert r.status_code == 200, r.text
        yield servers[0], servers[1]
    finally:
        for s in servers:
            stop_server(s)


def _tenant(front: RealServer, name: str, limits: dict[str, Any]) -> None:
    r = httpx.post(
        front.url + "/api/tenants", json={"name": name, "limits": limits}, headers=ADMIN, timeout=30
    )
    assert r.status_code == 201, r.text


def _key(front: RealServer, tenant: str) -> tuple[str, str]:
    r = httpx.post(front.url + "/api/keys", json={"tenant": tenant}, headers=ADMIN, timeout=30)
    assert r.status_code == 201, r.text
    return str(r.json()["key"]), str(r.json()["id"])


def _chat(front: RealServer, key: str, max_tokens: int = 2, **body: Any) -> httpx.Response:
    payload = {"model": MODEL, "messages": [{"role": "user", "content": "Say hi."}], "max_tokens": max_tokens}
    return httpx.post(
        front.url + "/v1/chat/completions",
        json={**payload, **body},
        headers={"authorization": f"Bearer {key}"},
        timeout=300,
    )


def _code(r: httpx.Response) -> str:
    return str(r.json()["error"]["code"])


def test_a_model_and_a_tenant_made_on_one_front_end_serve_on_the_other(
    front_ends: tuple[RealServer, RealServer],
) -> None:
    a, b = front_ends
    _tenant(a, "shared", {})
    key, key_id = _key(b, "shared")  # the tenant made on a, its key on b
    listed = httpx.get(b.url + "/v1/models", headers={"authorization": f"Bearer {key}"}, timeout=30)
    assert listed.status_code == 200 and MODEL in [m["id"] for m in listed.json()["data"]]
    for front in (a, b):
        r = _chat(front, key)
        assert r.status_code == 200, r.text
        assert r.json()["usage"]["completion_tokens"] == 2
    # Revoked on b: refused by a at once (no front-end keeps keys in memory).
    assert httpx.delete(b.url + f"/api/keys/{key_id}", headers=ADMIN, timeout=30).status_code in (200, 204)
    refused = _chat(a, key)
    assert refused.status_code == 401, refused.text


def test_requests_per_minute_count_requests_on_both(front_ends: tuple[RealServer, RealServer]) -> None:
    a, b = front_ends
    _tenant(a, "minutely", {"requests_per_minute": 3})
    key, _ = _key(a, "minutely")
    assert [_chat(front, key).status_code for front in (a, b, a)] == [200, 200, 200]
    for front in (b, a):  # the fourth in the minute, on either side
        r = _chat(front, key)
        assert r.status_code == 429 and _code(r) == "rate_limit_exceeded", r.text
        assert int(r.headers["retry-after"]) >= 1


def test_a_stream_open_on_one_front_end_holds_the_concurrency_limit_on_the_other(
    front_ends: tuple[RealServer, RealServer],
) -> None:
    a, b = front_ends
    _tenant(b, "single", {"concurrent_requests": 1})
    key, _ = _key(b, "single")
    body = {
        "model": MODEL,
        "messages": [{"role": "user", "content": "Count to one thousand."}],
        "max_tokens": 800,
        "ignore_eos": True,
        "stream": True,
    }
    with (
        httpx.Client(timeout=300) as client,
        client.stream(
            "POST", a.url + "/v1/chat/completions", json=body, headers={"authorization": f"Bearer {key}"}
        ) as stream,
    ):
        assert stream.status_code == 200
        lines = stream.iter_lines()
        assert next(line for line in lines if line.startswith("data: ")).startswith("data: {")
        held = _chat(b, key)  # while the stream on a runs
        assert held.status_code == 429 and _code(held) == "rate_limit_exceeded", held.text
        assert "requests running" in held.json()["error"]["message"]
    # The client left: a aborts the stream and frees its place, which b then sees.
    deadline = time.monotonic() + 30
    while (r := _chat(b, key)).status_code == 429 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert r.status_code == 200, r.text


def test_a_budget_spent_through_one_front_end_is_spent_on_the_other(
    front_ends: tuple[RealServer, RealServer],
) -> None:
    a, b = front_ends
    _tenant(a, "thrifty", {"token_budget": 100, "budget_period": "day"})
    key, _ = _key(b, "thrifty")
    spend = _chat(a, key, max_tokens=120, ignore_eos=True)
    assert spend.status_code == 200, spend.text
    assert spend.json()["usage"]["total_tokens"] >= 100
    for front in (b, a):
        r = _chat(front, key)
        assert r.status_code == 429 and _code(r) == "insufficient_quota", r.text
        assert r.headers.get("x-should-retry") == "false"
