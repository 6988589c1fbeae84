"""An engine wrapper that serializes every call and keeps them on one long-lived thread's watch.

The engine protocol is "one caller at a time", but the kernel tokenizes and renders prompts
while the scheduler steps the same engine (and a worker engine's pipe carries one request at
a time). :class:`LockedEngine` takes a lock around each call so the two never interleave.

The lock is fair (first come, first served): the scheduler's step thread takes it again right
after releasing it, and with an ordinary lock a tokenize call could wait behind many steps.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from llmos.engine.base import (
    Admission,
    Engine,
    EngineHealth,
    EngineInfo,
    LoadSpec,
    SeqSnapshot,
    SeqStatus,
    SequenceSpec,
    StepPlan,
    StepResult,
)
from llmos.types import ChatMessage, SeqId, TokenId


class FairLock:
    """A FIFO (ticket) lock: waiters get it in the order they asked. Not reentrant."""

    def __init__(self) -> None:
        self._cv = threading.Condition(threading.Lock())
        self._next_ticket = 0
        self._serving = 0

    def __enter__(self) -> None:
        with self._cv:
            ticket = self._next_ticket
            self._next_ticket += 1
            self._cv.wait_for(lambda: self._serving == ticket)

    def __exit__(self, *exc: object) -> None:
        with self._cv:
            self._serving += 1
            self._cv.notify_all()


class LockedEngine:
    """Delegates every :class:`Engine` method to ``inner`` under one lock."""

    def __init__(self, inner: Engine) -> None:
        self.inner = inner
        self._lock = FairLock()

    @contextlib.contextmanager
    def exclusive(self) -> Iterator[Engine]:
        """Hold the engine for several calls in a row (no step runs between them): use the
        engine it yields, never this wrapper, inside (the lock is not reentrant)."""
        with self._lock:
            yield self.inner

    def load(self, spec: LoadSpec) -> EngineInfo:
        with self._lock:
            return self.inner.load(spec)

    @property
    def info(self) -> EngineInfo:
        with self._lock:
            return self.inner.info

    def tokenize(self, text: str, *, add_special: bool = True, parse_special: bool = True) -> list[TokenId]:
        with self._lock:
            return self.inner.tokenize(text, add_special=add_special, parse_special=parse_special)

    def detokenize(self, tokens: Sequence[TokenId]) -> str:
        with self._lock:
            return self.inner.detokenize(tokens)

    def render_chat(
        self,
        messages: Sequence[ChatMessage],
        *,
        add_generation_prompt: bool = True,
        tools: Sequence[Mapping[str, Any]] | None = None,
    ) -> str:
        with self._lock:
            return self.inner.render_chat(messages, add_generation_prompt=add_generation_prompt, tools=tools)

    def can_admit(self, n_prompt_tokens: int) -> bool:
        with self._lock:
            return self.inner.can_admit(n_prompt_tokens)

    def admit(self, spec: SequenceSpec) -> Admission:
        with self._lock:
            return self.inner.admit(spec)

    def step(self, plan: StepPlan | None = None) -> StepResult:
        with self._lock:
            return self.inner.step(plan)

    def abort(self, seq_id: SeqId) -> None:
        with self._lock:
            self.inner.abort(seq_id)

    def preempt(self, seq_id: SeqId) -> SeqSnapshot:
        with self._lock:
            return self.inner.preempt(seq_id)

    def restore(self, snapshot: SeqSnapshot) -> Admission:
        with self._lock:
            return self.inner.restore(snapshot)

    def sequences(self) -> list[SeqStatus]:
        with self._lock:
            return self.inner.sequences()

    def embed(
        self, inputs: Sequence[str | Sequence[TokenId]], *, normalize: bool = True
    ) -> list[list[float]]:
        with self._lock:
            return self.inner.embed(inputs, normalize=normalize)

    def health(self) -> EngineHealth:
        with self._lock:
            return self.inner.health()

    def unload(self) -> None:
        with self._lock:
            self.inner.unload()
