"""Factories for scheduler tests: a virtual clock the fake engine spends, engines, requests, and a
driver that steps a scheduler and keeps what it delivered."""

from __future__ import annotations

import threading
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from llmos.config import SchedulerConfig
from llmos.engine.base import LoadSpec, SamplingParams, SeqOutput, SequenceSpec
from llmos.engine.fake import FakeEngine
from llmos.errors import LLMOSError
from llmos.scheduler import GenerationRequest, ModelScheduler, RequestClass, SchedulerEvent


class VirtualClock:
    """Monotonic seconds that only move when the fake engine 'computes' (or a test advances it)."""

    def __init__(self, start: float = 100.0) -> None:
        self.now = start
        self._lock = threading.Lock()

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        with self._lock:
            self.now += seconds

    sleep = advance


def make_engine(
    clock: VirtualClock | None = None,
    *,
    n_slots: int = 2,
    n_ctx: int = 4096,
    n_batch: int = 64,
    token_cost_s: float = 0.001,
    **extra: Any,
) -> FakeEngine:
    clock = clock or VirtualClock()
    engine = FakeEngine(clock=clock, sleep=clock.sleep)
    engine.load(
        LoadSpec(
            model_path=Path("fake.gguf"),
            n_slots=n_slots,
            n_ctx=n_ctx,
            n_batch=n_batch,
            extra={"token_cost_s": token_cost_s, **extra},
        )
    )
    return engine


def make_request(
    request_id: str,
    *,
    tenant: str = "t",
    urgency: int = 5,
    prompt_len: int = 8,
    max_tokens: int = 4,
    deadline: float | None = None,
    prompt: tuple[int, ...] | None = None,
) -> GenerationRequest:
    # Distinct prompts per request (no accidental prefix sharing) unless one is given.
    toks = (
        prompt
        if prompt is not None
        else tuple(16 + ((zlib.crc32(request_id.encode()) + i * 7) % 200) for i in range(prompt_len))
    )
    return GenerationRequest(
        request_id=request_id,
        spec=SequenceSpec(
            seq_id=request_id, prompt=toks, params=SamplingParams(temperature=0.0, max_tokens=max_tokens)
        ),
        cls=RequestClass(tenant=tenant, urgency=urgency, deadline=deadline),
    )


class Recorder:
    def __init__(self) -> None:
        self.events: list[SchedulerEvent] = []

    def __call__(self, event: SchedulerEvent) -> None:
        self.events.append(event)

    def ids(self, kind: str) -> list[str]:
        return [e.request_id for e in self.events if e.kind == kind]


def make_scheduler(
    engine: FakeEngine,
    clock: VirtualClock,
    *,
    policy: str = "fcfs",
    recorder: Recorder | None = None,
    **config: Any,
) -> ModelScheduler:
    return ModelScheduler(
        engine,
        model="fake:test",
        config=SchedulerConfig(policy=policy, **config),  # type: ignore[arg-type]
        clock=clock,
        on_event=recorder,
    )


class Driver:
    """Steps a scheduler and keeps every delivery, by request."""

    def __init__(self, scheduler: ModelScheduler) -> None:
        self.s = scheduler
        self.items: dict[str, list[SeqOutput | LLMOSError]] = {}

    def add(self, request: GenerationRequest) -> str:
        self.s.add(request)
        return request.request_id

    def step(self) -> None:
        for rid, item in self.s.step():
            self.items.setdefault(rid, []).append(item)

    def done(self, rid: str) -> bool:
        items = self.items.get(rid)
        if not items:
            return False
        last = items[-1]
        return isinstance(last, LLMOSError) or last.finish_reason is not None

    def drive(self, until: Callable[[], bool], max_iters: int = 10_000) -> int:
        for i in range(max_iters):
            if until():
                return i
            self.step()
        raise AssertionError("condition not reached")

    def outputs(self, rid: str) -> list[SeqOutput]:
        """The request's outputs; raises the error that ended it, if one did."""
        out: list[SeqOutput] = []
        for item in self.items.get(rid, []):
            if isinstance(item, LLMOSError):
                raise item
            out.append(item)
        return out

    def text(self, rid: str) -> str:
        return "".join(o.text for o in self.outputs(rid))

    def finish(self, rid: str) -> str | None:
        return self.outputs(rid)[-1].finish_reason
