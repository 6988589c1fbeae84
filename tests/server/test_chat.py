from __future__ import annotations

import json

import pytest

from llmos.engine.fake import LOREM

from .conftest import ServeFactory

pytestmark = pytest.mark.anyio

MESSAGES = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hello"}]


async def test_chat_completion_returns_text_usage_and_headers(serve: ServeFactory) -> None:
    s = await serve()
    r = await s.client.post(
        "/v1/chat/completions",
        json={
            "model": "fake:1",
            "messages": MESSAGES,
            "max_tokens": 12,
            "temperature": 0,
            "unknown_field": 1,
        },
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["object"] == "chat.completion"
    assert body["model"] == "fake:1"
    choice = body["choices"][0]
    assert choice["message"]["role"] == "assistant"
    assert len(choice["message"]["content"]) == 12 and choice["message"]["content"] in LOREM * 2
    assert choice["finish_reason"] == "length"
    usage = body["usage"]
    assert usage["completion_tokens"] == 12
    assert usage["prompt_tokens"] > 10
    assert usage["total_tokens"] == usage["prompt_tokens"] + 12
    assert r.headers["x-request-id"] and body["id"] == f"chatcmpl-{r.headers['x-request-id']}"
    assert int(r.headers["x-llmos-queue-position"]) >= 0
    assert int(r.headers["x-llmos-estimated-start-ms"]) >= 0


async def test_chat_n_choices_and_seed(serve: ServeFactory) -> None:
    s = await serve()
    body = {"model": "fake:1", "messages": MESSAGES, "max_tokens": 8, "n": 3, "seed": 7, "temperature": 1}
    first = (await s.client.post("/v1/chat/completions", json=body)).json()
    again = (await s.client.post("/v1/chat/completions", json=body)).json()
    texts = [c["message"]["content"] for c in first["choices"]]
    assert [c["index"] for c in first["choices"]] == [0, 1, 2]
    assert len(set(texts)) == 3, "each choice samples with its own seed"
    assert texts == [c["message"]["content"] for c in again["choices"]], "a seed makes it reproducible"
    assert first["usage"]["completion_tokens"] == 24


async def test_chat_stop_string_ends_with_stop(serve: ServeFactory) -> None:
    s = await serve()
    free = (
        await s.client.post(
            "/v1/chat/completions",
            json={"model": "fake:1", "messages": MESSAGES, "max_tokens": 40, "temperature": 0},
        )
    ).json()["choices"][0]["message"]["content"]
    stop = free[10:13]
    r = await s.client.post(
        "/v1/chat/completions",
        json={"model": "fake:1", "messages": MESSAGES, "max_tokens": 40, "temperature": 0, "stop": [stop]},
    )
    choice = r.json()["choices"][0]
    assert choice["finish_reason"] == "stop"
    assert choice["message"]["content"] == free[: free.index(stop)]


async def test_chat_logprobs(serve: ServeFactory) -> None:
    s = await serve()
    r = await s.client.post(
        "/v1/chat/completions",
        json={"model": "fake:1", "messages": MESSAGES, "max_tokens": 5, "logprobs": True, "top_logprobs": 2},
    )
    content = r.json()["choices"][0]["logprobs"]["content"]
    assert len(content) == 5
    assert all(c["logprob"] <= 0 and len(c["top_logprobs"]) == 2 for c in content)
    assert "".join(c["token"] for c in content) == r.json()["choices"][0]["message"]["content"]


async def test_chat_stream_sse_with_usage(serve: ServeFactory) -> None:
    s = await serve()
    r = await s.client.post(
        "/v1/chat/completions",
        json={
            "model": "fake:1",
            "messages": MESSAGES,
            "max_tokens": 6,
            "stream": True,
            "stream_options": {"include_usage": True},
        },
    )
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/event-stream")
    lines = [ln for ln in r.text.split("\n\n") if ln]
    assert lines[-1] == "data: [DONE]"
    chunks = [json.loads(ln.removeprefix("data: ")) for ln in lines[:-1]]
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
    assert len(text) == 6
    finishes = [c["choices"][0]["finish_reason"] for c in chunks if c["choices"]]
    assert finishes[-1] == "length"
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["completion_tokens"] == 6
    assert all(c["usage"] is None for c in chunks[:-1])


async def test_stream_without_usage_has_no_usage_field(serve: ServeFactory) -> None:
    s = await serve()
    r = await s.client.post(
        "/v1/chat/completions",
        json={"model": "fake:1", "messages": MESSAGES, "max_tokens": 3, "stream": True},
    )
    chunks = [json.loads(x.removeprefix("data: ")) for x in r.text.split("\n\n") if x and "[DONE]" not in x]
    assert all("usage" not in c for c in chunks)


async def test_max_completion_tokens_wins(serve: ServeFactory) -> None:
    s = await serve()
    r = await s.client.post(
        "/v1/chat/completions",
        json={"model": "fake:1", "messages": MESSAGES, "max_tokens": 9, "max_completion_tokens": 4},
    )
    assert r.json()["usage"]["completion_tokens"] == 4


async def test_structured_output_errors_are_400_with_param(serve: ServeFactory) -> None:
    s = await serve()
    bad_schema = {"type": "json_schema", "json_schema": {"name": "x", "schema": {"not": {"type": "string"}}}}
    r = await s.client.post(
        "/v1/chat/completions", json={"model": "fake:1", "messages": MESSAGES, "response_format": bad_schema}
    )
    assert r.status_code == 400, r.text
    assert r.json()["error"]["param"] == "response_format" and "not" in r.json()["error"]["message"]
    r = await s.client.post(
        "/v1/chat/completions",
        json={
            "model": "fake:1",
            "messages": MESSAGES,
            "tools": [{"type": "function"}],
            "tool_choice": "required",
        },
    )
    assert r.status_code == 400, r.text
    assert r.json()["error"]["param"] == "tools"


async def test_tool_history_messages_are_accepted(serve: ServeFactory) -> None:
    s = await serve()
    tool = {"type": "function", "function": {"name": "f", "parameters": {"type": "object", "properties": {}}}}
    history = [
        {"role": "user", "content": "call f"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {"id": "call_1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": "42"},
    ]
    r = await s.client.post(
        "/v1/chat/completions",
        json={
            "model": "fake:1",
            "messages": history,
            "tools": [tool],
            "tool_choice": "none",
            "max_tokens": 4,
        },
    )
    assert r.status_code == 200, r.text
    assert r.json()["choices"][0]["message"]["content"]
