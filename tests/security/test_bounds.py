"""Bounded inputs: each cap answers a clear 400 or 413 naming the field."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from .conftest import Served, ServeFactory

pytestmark = pytest.mark.anyio

HI = [{"role": "user", "content": "hi"}]


async def _chat(s: Served, **body: Any) -> tuple[int, str | None]:
    r = await s.client.post(
        "/v1/chat/completions", json={"model": "fake:1", "messages": HI, **body}, headers=s.auth(s.admin_key)
    )
    return r.status_code, r.json()["error"]["param"] if r.status_code >= 400 else None


async def _text(s: Served, **body: Any) -> tuple[int, str | None]:
    r = await s.client.post(
        "/v1/completions", json={"model": "fake:1", "prompt": "hi", **body}, headers=s.auth(s.admin_key)
    )
    return r.status_code, r.json()["error"]["param"] if r.status_code >= 400 else None


async def test_body_size_with_and_without_content_length(secured: ServeFactory) -> None:
    s = await secured(max_body_bytes=2048)
    big = {"model": "fake:1", "messages": [{"role": "user", "content": "x" * 4000}]}
    r = await s.client.post("/v1/chat/completions", json=big, headers=s.auth(s.admin_key))
    assert r.status_code == 413 and r.json()["error"]["code"] == "payload_too_large"

    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(10):
            yield b" " * 500

    r = await s.client.post(
        "/v1/chat/completions",
        content=chunks(),
        headers={**s.auth(s.admin_key), "content-type": "application/json"},
    )
    assert r.status_code == 413

    async def small() -> AsyncIterator[bytes]:
        yield b'{"model": "fake:1", '
        yield b'"messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}'

    r = await s.client.post(
        "/v1/chat/completions",
        content=small(),
        headers={**s.auth(s.admin_key), "content-type": "application/json"},
    )
    assert r.status_code == 200, r.text


async def test_counts_and_sampling_bounds(secured: ServeFactory) -> None:
    s = await secured()
    assert await _chat(s, messages=HI * 513) == (400, "messages")
    assert await _text(s, prompt=["a"] * 65) == (400, "prompt")
    assert await _chat(s, max_tokens=9000) == (400, "max_tokens")
    assert await _chat(s, n=9) == (400, "n")
    assert await _chat(s, logprobs=True, top_logprobs=21) == (400, "top_logprobs")
    assert await _text(s, logprobs=6) == (400, "logprobs")
    assert await _chat(s, stop=[f"s{i}" for i in range(9)]) == (400, "stop")
    assert await _chat(s, stop=["x" * 300]) == (400, "stop")
    assert await _chat(s, max_tokens=2, n=2, stop=["zz"]) == (200, None)


async def test_prompt_longer_than_the_context(secured: ServeFactory) -> None:
    s = await secured()
    status, param = await _chat(s, messages=[{"role": "user", "content": "word " * 3000}], max_tokens=2)
    assert status == 400 and param == "messages"
