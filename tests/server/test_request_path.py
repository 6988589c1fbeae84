"""One chat request takes one path: the route parses HTTP, passes its door (auth, limits) and
calls the kernel, which composes the request (retrieval, planning, residency, submission,
answer parsing); the route then writes HTTP. The path never doubles back: no package below
calls up into one above it, and the server calls nothing below the kernel but its doors.

Before the one typed request (issue 18), the chat route itself planned tools and read the
answer back (``server -> structured``), retrieved context (``server -> data``, and ``data ->
server`` to meter the query's tokens) and asked the kernel three times (context size, chat,
digest). See :mod:`.request_path` for how the path is traced.
"""

from __future__ import annotations

from typing import Any

import pytest

from .conftest import ServeFactory
from .request_path import trace_route

pytestmark = pytest.mark.anyio

CLOCK = {
    "type": "function",
    "function": {
        "name": "get_time",
        "parameters": {"type": "object", "properties": {"tz": {"type": "string"}}},
    },
}


@pytest.mark.parametrize(
    "extra",
    [{}, {"stream": True}, {"tools": [CLOCK]}, {"tools": [CLOCK], "stream": True}],
    ids=["plain", "streamed", "tools", "streamed-tools"],
)
async def test_a_chat_request_never_doubles_back(serve: ServeFactory, extra: dict[str, Any]) -> None:
    s = await serve()
    body = {"model": "fake:1", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4, **extra}
    assert (await s.client.post("/v1/chat/completions", json=body)).status_code == 200  # loads the model
    with trace_route("llmos.server.routes.openai_chat") as path:
        r = await s.client.post("/v1/chat/completions", json=body)
    assert r.status_code == 200, r.text
    assert path.doubling_back() == [], path.describe()
    order = path.order()
    assert order[0] == "server" and order.index("kernel") < min(
        order.index(p) for p in ("structured", "resources", "core", "engine")
    ), path.describe()
    assert {("server", "kernel"), ("kernel", "structured"), ("kernel", "core")} <= set(path.edges)
