"""A scripted OpenAI-compatible server as an ``httpx.MockTransport``, on a fake clock.

Each request follows a :class:`Script`: time to the first token, the gap between tokens, how
many tokens, and how the answer ends (normally, or cut short the ways real servers cut streams).
Time advances only when the client reads a chunk, so at concurrency 1 every latency the load
generator measures is exactly what the script says.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds

    async def sleep(self, seconds: float) -> None:
        # Let tasks that are ready run first, at the current time, as a real sleep would.
        await asyncio.sleep(0)
        self.advance(seconds)


@dataclass(frozen=True)
class Script:
    ttft_s: float = 0.1
    gap_s: float = 0.02
    tokens: int = 5
    status: int = 200
    usage: bool = True
    end: str = "normal"
    """normal | no_finish ([DONE] without finish_reason) | no_done | error_event | transport_error
    | finish_error"""
    finish: str = "length"
    role_chunk: bool = True
    """Chat: send an empty role delta first (as OpenAI does); it is not a token."""


@dataclass
class FakeOpenAI:
    clock: FakeClock
    script: Callable[[int], Script] = lambda _n: Script()
    bodies: list[dict[str, Any]] = field(default_factory=list)
    in_flight: int = 0
    max_in_flight: int = 0
    yields_per_request: int = 0
    """Non-streaming: event-loop turns a request holds its place (for concurrency checks)."""

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self.handle)

    async def handle(self, request: httpx.Request) -> httpx.Response:
        await asyncio.sleep(0)  # a network round trip suspends the client, as a real one would
        body = json.loads(request.content)
        n = len(self.bodies)
        self.bodies.append(body)
        s = self.script(n)
        if s.status != 200:
            return httpx.Response(s.status, json={"error": {"message": "scripted failure", "type": "x"}})
        chat = request.url.path.endswith("/chat/completions")
        if body.get("stream"):
            return httpx.Response(
                200, headers={"content-type": "text/event-stream"}, content=self._sse(s, chat)
            )
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        for _ in range(self.yields_per_request):
            await asyncio.sleep(0)
        self.in_flight -= 1
        self.clock.advance(s.ttft_s + s.gap_s * (s.tokens - 1))
        text = "x" * s.tokens
        choice: dict[str, Any] = {"index": 0, "finish_reason": s.finish}
        choice.update({"message": {"role": "assistant", "content": text}} if chat else {"text": text})
        payload: dict[str, Any] = {"id": f"r{n}", "choices": [choice]}
        if s.usage:
            payload["usage"] = {
                "prompt_tokens": 7,
                "completion_tokens": s.tokens,
                "total_tokens": 7 + s.tokens,
            }
        return httpx.Response(200, json=payload)

    async def _sse(self, s: Script, chat: bool) -> AsyncIterator[bytes]:
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            if chat and s.role_chunk:
                yield _event(
                    {"choices": [{"index": 0, "delta": {"role": "assistant"}, "finish_reason": None}]}
                )
            for i in range(s.tokens):
                self.clock.advance(s.ttft_s if i == 0 else s.gap_s)
                if s.end == "transport_error" and i == 2:
                    raise httpx.ReadError("connection reset")
                last = i == s.tokens - 1
                finish = None
                if last and s.end != "no_finish":
                    finish = "error" if s.end == "finish_error" else s.finish
                piece = {"content": "t"} if chat else None
                c: dict[str, Any] = {"index": 0, "finish_reason": finish}
                c.update({"delta": piece} if chat else {"text": "t"})
                yield _event({"choices": [c]})
            if s.end == "error_event":
                yield _event({"error": {"message": "engine died", "type": "server_error"}})
                return
            if s.usage:
                usage = {"prompt_tokens": 7, "completion_tokens": s.tokens, "total_tokens": 7 + s.tokens}
                yield _event({"choices": [], "usage": usage})
            if s.end != "no_done":
                yield b"data: [DONE]\n\n"
        finally:
            self.in_flight -= 1


def _event(obj: dict[str, Any]) -> bytes:
    return f"data: {json.dumps(obj)}\n\n".encode()
