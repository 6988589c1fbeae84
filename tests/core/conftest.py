"""Factories for engine-core tests: a spec for the fake backend, clients on thread and process
hosts, requests, and a gate that holds the fake engine inside a step."""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from llmos.config import SchedulerConfig
from llmos.core import CoreClient, CoreHost, CoreSpec, ThreadHost
from llmos.engine.base import LoadSpec, SamplingParams, SequenceSpec
from llmos.engine.fake import FakeEngine
from llmos.scheduler import GenerationRequest, RequestClass, SchedulerEvent


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def fake_spec(
    *, n_slots: int = 2, n_ctx: int = 4096, scheduler: SchedulerConfig | None = None, **extra: Any
) -> CoreSpec:
    return CoreSpec(
        backend="fake",
        load=LoadSpec(model_path=Path("/nonexistent/fake.gguf"), n_ctx=n_ctx, n_slots=n_slots, extra=extra),
        model="fake:test",
        scheduler=scheduler or SchedulerConfig(),
    )


def request(
    rid: str,
    *,
    tenant: str = "t",
    urgency: int = 5,
    max_tokens: int = 5,
    prompt: tuple[int, ...] = (1, 20, 30, 40),
) -> GenerationRequest:
    params = SamplingParams(temperature=0.0, max_tokens=max_tokens)
    return GenerationRequest(
        rid, SequenceSpec(rid, prompt, params), RequestClass(tenant=tenant, urgency=urgency)
    )


class Gate:
    """The fake engine's ``sleep``: each step waits until the test lets one through (or opens it)."""

    def __init__(self) -> None:
        self._permits = threading.Semaphore(0)
        self.waiting = threading.Event()
        self._open = False

    def sleep(self, _seconds: float) -> None:
        if self._open:
            return
        self.waiting.set()
        self._permits.acquire()
        self.waiting.clear()

    def step(self) -> None:
        self._permits.release()

    def open(self) -> None:
        self._open = True
        for _ in range(64):
            self._permits.release()


class Harness:
    """Clients over thread hosts of fake engines; every client is closed at teardown."""

    def __init__(self) -> None:
        self.engines: list[FakeEngine] = []
        self.events: list[SchedulerEvent] = []
        self.dead: list[str] = []
        self.clients: list[CoreClient] = []

    def engine(self, sleep: Callable[[float], None] | None = None) -> Callable[[str], FakeEngine]:
        def make(backend: str) -> FakeEngine:
            engine = FakeEngine() if sleep is None else FakeEngine(sleep=sleep)
            self.engines.append(engine)
            return engine

        return make

    async def client(
        self,
        spec: CoreSpec | None = None,
        *,
        host: CoreHost | None = None,
        sleep: Callable[[float], None] | None = None,
    ) -> CoreClient:
        client = CoreClient(
            host or ThreadHost(self.engine(sleep)),
            spec or fake_spec(),
            on_event=self.events.append,
            on_dead=self.dead.append,
        )
        self.clients.append(client)
        await client.start()
        return client

    def kinds(self, kind: str) -> list[str]:
        return [e.request_id for e in self.events if e.kind == kind]


@pytest.fixture
async def harness() -> AsyncIterator[Harness]:
    h = Harness()
    yield h
    for client in h.clients:
        await client.close()
