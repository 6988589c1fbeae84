from __future__ import annotations

import asyncio

import pytest

from llmos.config import load_config
from polling import until

from .conftest import ServeFactory

pytestmark = pytest.mark.anyio

MSG = [{"role": "user", "content": "hi"}]


def _assert_error(r, status: int, *, param: str | None = None, code: str | None = None) -> dict:  # type: ignore[no-untyped-def]
    assert r.status_code == status, r.text
    err = r.json()["error"]
    assert set(err) == {"message", "type", "param", "code"}
    assert err["message"]
    if param is not None:
        assert err["param"] == param
    if code is not None:
        assert err["code"] == code
    return err


@pytest.mark.parametrize(
    ("patch", "param"),
    [
        ({"temperature": 3}, "temperature"),
        ({"top_p": 0}, "top_p"),
        ({"n": 0}, "n"),
        ({"n": 9}, "n"),
        ({"max_tokens": 0}, "max_tokens"),
        ({"presence_penalty": -3}, "presence_penalty"),
        ({"messages": []}, "messages"),
        ({"messages": [{"role": "wizard", "content": "x"}]}, None),
        ({"top_logprobs": 3}, "top_logprobs"),
        ({"stop": [""]}, "stop"),
        ({"priority": 10}, "priority"),
        ({"service_tier": "gold"}, "service_tier"),
        ({"model": "../etc"}, "model"),
    ],
)
async def test_invalid_values_are_400_in_openai_shape(
    serve: ServeFactory, patch: dict, param: str | None
) -> None:  # type: ignore[type-arg]
    s = await serve()
    body = {"model": "fake:1", "messages": MSG, **patch}
    err = _assert_error(await s.client.post("/v1/chat/completions", json=body), 400)
    assert err["type"] == "invalid_request_error"
    if param is not None:
        assert err["param"] == param


async def test_malformed_json_and_missing_fields(serve: ServeFactory) -> None:
    s = await serve()
    r = await s.client.post(
        "/v1/chat/completions", content=b"{not json", headers={"content-type": "application/json"}
    )
    _assert_error(r, 400)
    _assert_error(await s.client.post("/v1/chat/completions", json={"messages": MSG}), 400, param="model")


async def test_a_json_error_says_where_in_words(serve: ServeFactory) -> None:
    s = await serve()
    body = b'{\n  "model": "fake:1",\n  "messages": [{"role": "user", "content": "hi"},]\n}'
    r = await s.client.post(
        "/v1/chat/completions", content=body, headers={"content-type": "application/json"}
    )
    err = _assert_error(r, 400, code="invalid_json")
    assert err["param"] is None, "an offset is not a parameter"
    assert err["message"] == ("the request body is not valid JSON: Expecting value at line 3, column 50"), (
        err["message"]
    )


async def test_unknown_model_is_404(serve: ServeFactory) -> None:
    s = await serve()
    r = await s.client.post("/v1/chat/completions", json={"model": "ghost:1", "messages": MSG})
    err = _assert_error(r, 404, code="model_not_found", param="model")
    assert "ghost" in err["message"]


async def test_unknown_route_and_body_too_large(serve: ServeFactory, tmp_path) -> None:  # type: ignore[no-untyped-def]
    s = await serve(config=load_config(home=tmp_path / "h", max_body_bytes=2048))
    _assert_error(await s.client.get("/v1/nothing"), 404)
    r = await s.client.post(
        "/v1/chat/completions", json={"model": "fake:1", "messages": MSG, "pad": "x" * 4096}
    )
    _assert_error(r, 413, code="payload_too_large")
    assert r.headers["x-request-id"]


async def test_tenant_over_its_queue_share_gets_429_with_retry_after(serve: ServeFactory, tmp_path) -> None:  # type: ignore[no-untyped-def]
    cfg = load_config(home=tmp_path / "h", n_slots=1, n_ctx=2048, max_queue_per_tenant=1, max_queue=8)
    s = await serve(config=cfg, step_cost_s=0.01)
    body = {"model": "fake:1", "messages": MSG, "max_tokens": 200, "stream": True}

    # One runs, one waits; the third request from the same tenant is over its share.
    def count(what: str) -> int:
        loaded = s.kernel.loaded("fake:1")
        return int(getattr(loaded.core, what)) if loaded is not None else -1

    first = asyncio.create_task(
        s.client.post("/v1/chat/completions", json=body, headers={"x-llmos-tenant": "a"})
    )
    await until(lambda: count("running") == 1, what="the first request running")
    second = asyncio.create_task(
        s.client.post("/v1/chat/completions", json=body, headers={"x-llmos-tenant": "a"})
    )
    await until(lambda: count("queued") == 1, what="the second request queued")
    r = await s.client.post("/v1/chat/completions", json=body, headers={"x-llmos-tenant": "a"})
    err = _assert_error(r, 429, code="rate_limit_exceeded")
    assert err["type"] == "rate_limit_error"
    assert int(r.headers["retry-after"]) >= 1
    other = await s.client.post(
        "/v1/chat/completions",
        json={**body, "max_tokens": 2, "stream": False},
        headers={"x-llmos-tenant": "b"},
    )
    assert other.status_code == 200, "another tenant still gets in"
    for t in (first, second):
        assert (await t).status_code == 200
