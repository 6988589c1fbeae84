"""No request holds the event loop: planning a chat (tools and response formats compiled into
a grammar, CPU work sized by the client) runs off it, and its size is bounded.

The probe: 5,000 tool definitions spent ~8 s planning on the event loop while ``/health``
waited 6.5 s. Here planning is held until ``/health`` has answered: on the loop, that could
never happen (the hold times out instead, and the test fails).
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest

import llmos.kernel.kernel as kernel_module
from llmos.server.schemas.chat import MAX_TOOLS

from .conftest import ServeFactory
from .workloads import tools

pytestmark = pytest.mark.anyio


async def test_health_answers_while_the_heaviest_chat_is_planned(
    serve: ServeFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    s = await serve()
    planning, health_answered = threading.Event(), threading.Event()
    released: list[bool] = []
    real = kernel_module.plan_chat

    def held_plan(*args: Any, **kwargs: Any) -> Any:
        planning.set()
        released.append(health_answered.wait(timeout=10))
        return real(*args, **kwargs)

    monkeypatch.setattr(kernel_module, "plan_chat", held_plan)
    body = {
        "model": "fake:1",
        "messages": [{"role": "user", "content": "Weather in Oslo for 3 days?"}],
        "tools": tools(MAX_TOOLS),
        "max_tokens": 8,
    }
    chat = asyncio.create_task(s.client.post("/v1/chat/completions", json=body))
    assert await asyncio.to_thread(planning.wait, 10)
    health = await s.client.get("/health")
    health_answered.set()
    assert health.status_code == 200
    answered = await chat  # planned, then too long for the fake model's context (bytes are tokens)
    assert answered.status_code == 400 and answered.json()["error"]["param"] == "messages"
    assert released == [True]  # planning was still held when /health answered


async def test_too_many_tools_are_refused_before_planning(serve: ServeFactory) -> None:
    s = await serve()
    body = {"model": "fake:1", "messages": [{"role": "user", "content": "hi"}], "tools": tools(MAX_TOOLS + 1)}
    r = await s.client.post("/v1/chat/completions", json=body)
    assert r.status_code == 400 and r.json()["error"]["param"] == "tools"
