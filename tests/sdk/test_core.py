"""The SDK core, seen through both shells (``make_client``: sync and async) over a mock transport:
the requests every resource builds, retries, errors, pagination and stream parsing."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from llmos.sdk import (
    APIConnectionError,
    AuthenticationError,
    NotFoundError,
    RateLimitError,
    RetryPolicy,
    ServiceUnavailableError,
)
from llmos.sdk._core import sse_data

from .conftest import MakeClient

Handler = Callable[[httpx.Request], httpx.Response]
NO_WAIT = RetryPolicy(backoff=0.0)


class Server:
    """A scripted server: answers in order (the last one again), and keeps every request."""

    def __init__(self, *answers: httpx.Response | Exception) -> None:
        self.answers = list(answers)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        request.read()
        self.requests.append(request)
        answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        if isinstance(answer, Exception):
            raise answer
        # A fresh response each time: one answer may be given twice, to either kind of client.
        return httpx.Response(answer.status_code, headers=answer.headers, content=answer.content)

    @property
    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self)


def ok(body: Any) -> httpx.Response:
    return httpx.Response(200, json=body)


def refused(status: int, retry_after: str | None = "0", **headers: str) -> httpx.Response:
    if retry_after is not None:
        headers["retry-after"] = retry_after
    body = {"error": {"message": "busy", "type": "rate_limit_error", "code": "rate_limited"}}
    return httpx.Response(status, json=body, headers=headers)


TENANT = {"name": "acme", "plan": "pro", "weight": 2.0, "limits": {}}
ANYTHING = {
    **TENANT,
    "data": [],
    **{"digest": "d", "size": 1, "format": "gguf"},  # a model
    **{
        "id": 1,
        "collection": "kb",
        "version": 1,
        "latest": True,
        "content_type": "txt",
        "chunks": 1,
        "tokens": 1,
    },
}
"""An answer every call of the first test can read."""


def test_requests_carry_paths_queries_bodies_and_headers(make_client: MakeClient) -> None:
    server = Server(ok(ANYTHING))
    client = make_client(
        transport=server.transport, api_key="sk-1", tenant="acme", priority=7, deadline_ms=900
    )
    client.security.tenants.create("acme", plan="pro", limits={"requests_per_minute": 5})
    client.security.keys.list(tenant="acme")
    client.models.show("../etc")  # a name cannot change the route
    client.data.add_document("kb", b"hello", name="a.txt", metadata={"team": "hr"})
    create, keys, show, upload = server.requests
    assert (create.method, create.url.path) == ("POST", "/api/tenants")
    assert json.loads(create.content) == {
        "name": "acme",
        "plan": "pro",
        "store_prompts": False,
        "limits": {"requests_per_minute": 5},
    }
    assert dict(keys.url.params) == {"tenant": "acme"}
    assert show.url.raw_path == b"/api/models/..%2Fetc"
    assert upload.content == b"hello" and dict(upload.url.params) == {
        "name": "a.txt",
        "metadata": '{"team": "hr"}',
    }
    for request in server.requests:
        assert request.headers["authorization"] == "Bearer sk-1"
        assert (request.headers["x-llmos-tenant"], request.headers["x-llmos-priority"]) == ("acme", "7")
        assert request.headers["x-llmos-deadline-ms"] == "900"


@pytest.mark.parametrize("status", [429, 503])
def test_a_refusal_with_a_short_retry_after_is_tried_again(make_client: MakeClient, status: int) -> None:
    server = Server(refused(status), refused(status), ok(TENANT))
    client = make_client(transport=server.transport, retry=NO_WAIT)
    assert client.security.tenants.create("acme").name == "acme"  # a POST: nothing was admitted
    assert len(server.requests) == 3


@pytest.mark.parametrize(
    ("answer", "error"),
    [
        (refused(429, "60"), RateLimitError),  # longer than max_wait: the caller decides
        (refused(429, "0", **{"x-should-retry": "false"}), RateLimitError),  # a spent budget
        (refused(503, None), ServiceUnavailableError),  # no Retry-After: no promise to keep
    ],
)
def test_a_refusal_that_promises_nothing_soon_is_final(
    make_client: MakeClient, answer: httpx.Response, error: type[Exception]
) -> None:
    server = Server(answer, ok(TENANT))
    client = make_client(transport=server.transport, retry=NO_WAIT)
    with pytest.raises(error) as raised:
        client.security.tenants.get("acme")
    assert len(server.requests) == 1
    assert getattr(raised.value, "code", None) == "rate_limited"


def test_retries_stop_after_max_retries(make_client: MakeClient) -> None:
    server = Server(refused(429))
    client = make_client(transport=server.transport, retry=RetryPolicy(max_retries=2, backoff=0))
    with pytest.raises(RateLimitError) as raised:
        client.security.tenants.list()
    assert len(server.requests) == 3 and raised.value.retry_after == 0.0


def test_by_default_a_refusal_is_tried_twice_more_and_max_retries_0_turns_that_off(
    make_client: MakeClient,
) -> None:
    server = Server(refused(429))  # Retry-After: 0, so the default policy waits for nothing
    with pytest.raises(RateLimitError):
        make_client(transport=server.transport).security.tenants.list()
    assert len(server.requests) == 3
    server = Server(refused(429))
    with pytest.raises(RateLimitError):
        make_client(transport=server.transport, retry=RetryPolicy(max_retries=0)).security.tenants.list()
    assert len(server.requests) == 1


def test_connection_errors_are_retried_for_idempotent_calls_only(make_client: MakeClient) -> None:
    server = Server(httpx.ConnectError("refused"), ok({"data": [TENANT]}))
    client = make_client(transport=server.transport, retry=NO_WAIT)
    assert [t.name for t in client.security.tenants.list()] == ["acme"]
    assert len(server.requests) == 2
    server = Server(httpx.ConnectError("refused"), ok(TENANT))
    client = make_client(transport=server.transport, retry=NO_WAIT)
    with pytest.raises(APIConnectionError, match="cannot reach"):
        client.security.tenants.create("acme")
    assert len(server.requests) == 1


def test_a_health_probe_is_tried_once(make_client: MakeClient) -> None:
    server = Server(httpx.ConnectError("refused"), ok({}))
    client = make_client(transport=server.transport, retry=NO_WAIT)
    assert client.is_reachable() is False and len(server.requests) == 1


def test_errors_carry_what_the_server_said(make_client: MakeClient) -> None:
    body = {
        "error": {"message": "no key", "type": "authentication_error", "code": "missing_key", "param": None}
    }
    server = Server(httpx.Response(401, json=body), httpx.Response(404, text="plain text"))
    client = make_client(transport=server.transport)
    with pytest.raises(AuthenticationError) as auth:
        client.security.whoami()
    assert (auth.value.status_code, auth.value.code, auth.value.message) == (401, "missing_key", "no key")
    with pytest.raises(NotFoundError, match="plain text"):
        client.conversations.get("c1")


def test_conversations_iter_reads_every_page(make_client: MakeClient) -> None:
    def page(n: int) -> httpx.Response:
        rows = [{"id": f"c{i}", "title": "", "message_count": 0} for i in range(n)]
        return ok({"data": rows})

    server = Server(page(2), page(2), page(1))
    client = make_client(transport=server.transport)
    assert len(list(client.conversations.iter(page_size=2))) == 5
    assert [dict(r.url.params) for r in server.requests] == [
        {"limit": "2", "offset": str(offset)} for offset in (0, 2, 4)
    ]


def test_streams_parse_sse_and_raise_error_events(make_client: MakeClient) -> None:
    chunk = {"choices": [{"index": 0, "delta": {"content": "Hi"}}]}
    error = {"error": {"message": "engine died", "type": "overloaded_error"}}
    events = f"data: {json.dumps(chunk)}\n\n: keep-alive\n\ndata: {json.dumps(error)}\n\ndata: [DONE]\n\n"
    server = Server(
        httpx.Response(200, content=events.encode(), headers={"content-type": "text/event-stream"})
    )
    client = make_client(transport=server.transport)
    with pytest.raises(ServiceUnavailableError, match="engine died") as raised:
        list(client.stream_chat("m", [{"role": "user", "content": "x"}]))
    assert raised.value.status_code == 200
    assert json.loads(server.requests[0].content)["stream"] is True


def test_ndjson_progress_streams(make_client: MakeClient) -> None:
    lines = [{"status": "downloading", "completed": 5, "total": 10}, {"status": "success", "done": True}]
    server = Server(httpx.Response(200, content="\n".join(json.dumps(x) for x in lines).encode()))
    client = make_client(transport=server.transport)
    seen: list[Any] = []
    assert client.models.pull("m:1", progress=seen.append).done
    assert [p.completed for p in seen] == [5, None]


def test_sse_lines() -> None:
    assert sse_data("event: x") is None and sse_data("data: [DONE]") is None
    assert sse_data('data: {"a": 1}') == {"a": 1}
