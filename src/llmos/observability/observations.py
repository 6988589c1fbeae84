"""What the kernel holds while one request runs: it reports outputs and the end, and the
observation turns them into :class:`~llmos.observability.metrics.Metrics` observations."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Protocol

from prometheus_client import Counter, Histogram

from llmos.errors import LLMOSError
from llmos.observability.window import RecentRequests, Sample, TokenRate


class Instruments(Protocol):
    """What an observation records into: the instruments of
    :class:`~llmos.observability.metrics.Metrics`, which opens the observations."""

    clock: Callable[[], float]
    requests: Counter
    prompt_tokens: Counter
    completion_tokens: Counter
    ttft: Histogram
    tpot: Histogram
    e2e: Histogram
    embedding_requests: Counter
    embedding_tokens: Counter
    embedding_latency: Histogram
    recent: RecentRequests
    token_rate: TokenRate

    def record_totals(self, model: str, **deltas: int) -> None: ...


class RequestObservation:
    """One generation request, from the kernel to its end. Call :meth:`output` as tokens
    stream and :meth:`finish` once (later calls are ignored)."""

    def __init__(self, metrics: Instruments, model: str, tenant: str, started: float) -> None:
        self._m = metrics
        self.model = model
        self.tenant = tenant
        self.started = started
        self.first_output_at: float | None = None
        self._done = False
        # Resolved once: output() runs for every streamed token of every sequence.
        self._completion_tokens = metrics.completion_tokens.labels(model=model, tenant=tenant)

    def output(self, new_tokens: int) -> None:
        """New output arrived: ``new_tokens`` more completion tokens (the first call marks TTFT)."""
        if self.first_output_at is None:
            self.first_output_at = self._m.clock()
            self._m.ttft.labels(model=self.model).observe(max(0.0, self.first_output_at - self.started))
        if new_tokens > 0:
            self._completion_tokens.inc(new_tokens)
            self._m.record_totals(self.model, completion_tokens=new_tokens)
            self._m.token_rate.add(self._m.clock(), new_tokens)

    def finish(
        self,
        status: str,
        *,
        prompt_tokens: int = 0,
        completion_tokens: int = 0,
        longest_choice_tokens: int = 0,
    ) -> None:
        """The request ended with ``status`` (``ok``, ``cancelled`` or an error code). TPOT is
        measured over the longest choice (``n`` choices decode side by side)."""
        if self._done:
            return
        self._done = True
        m = self._m
        now = m.clock()
        e2e = max(0.0, now - self.started)
        tpot = None
        if self.first_output_at is not None and longest_choice_tokens > 1:
            tpot = max(0.0, now - self.first_output_at) / (longest_choice_tokens - 1)
            m.tpot.labels(model=self.model).observe(tpot)
        m.e2e.labels(model=self.model).observe(e2e)
        m.requests.labels(model=self.model, tenant=self.tenant, status=status).inc()
        if prompt_tokens:
            m.prompt_tokens.labels(model=self.model, tenant=self.tenant).inc(prompt_tokens)
        is_error = status not in ("ok", "cancelled")
        m.record_totals(self.model, requests=1, errors=int(is_error), prompt_tokens=prompt_tokens)
        ttft = None if self.first_output_at is None else self.first_output_at - self.started
        m.recent.add(
            Sample(
                ended=now,
                model=self.model,
                tenant=self.tenant,
                status=status,
                ttft=ttft,
                tpot=tpot,
                e2e=e2e,
                completion_tokens=completion_tokens,
            )
        )


class EmbeddingObservation:
    """One embedding request; call :meth:`finish` once (later calls are ignored)."""

    def __init__(self, metrics: Instruments, model: str, tenant: str, started: float) -> None:
        self._m = metrics
        self.model = model
        self.tenant = tenant
        self.started = started
        self._done = False

    def finish(self, status: str, *, tokens: int = 0) -> None:
        if self._done:
            return
        self._done = True
        m = self._m
        m.embedding_latency.labels(model=self.model).observe(max(0.0, m.clock() - self.started))
        m.embedding_requests.labels(model=self.model, tenant=self.tenant, status=status).inc()
        if tokens:
            m.embedding_tokens.labels(model=self.model, tenant=self.tenant).inc(tokens)


def status_of(error: BaseException | None) -> str:
    """The ``status`` label of a request that ended with ``error``: ``ok`` for none, ``cancelled``
    for a cancellation, else the llmos error code (``rate_limit_exceeded``, ``engine_dead``...)."""
    if error is None:
        return "ok"
    if isinstance(error, asyncio.CancelledError):
        return "cancelled"
    return error.code if isinstance(error, LLMOSError) else "internal_error"
