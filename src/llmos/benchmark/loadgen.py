"""Send a :class:`~llmos.benchmark.workload.Workload` and time every request.

Times come from an injected monotonic ``clock`` (seconds) and waits go through an injected
``sleep``, so tests drive a run on a fake clock; the HTTP transport is injectable too (an
``httpx.MockTransport`` in tests). Each request yields one :class:`RequestRecord`: a failure is
recorded with its kind (see :data:`ERROR_KINDS`), never raised.

A stream counts as complete only if every choice reported a ``finish_reason`` *and* the server
sent ``[DONE]``: a server that cuts a stream short (llama-cpp-python's server ends a stream with
``[DONE]`` but no finish reason when another request arrives) yields an ``incomplete_stream``.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from typing import Any

import httpx

from llmos.benchmark.sse_decoder import SSEDecoder
from llmos.benchmark.workload import Workload

Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]
OnResult = Callable[["RequestRecord"], None]

ERROR_KINDS = {
    "http_<status>": "the server answered with a non-2xx status",
    "connect": "the server could not be reached",
    "timeout": "no answer within the request timeout",
    "transport": "the connection failed mid-request",
    "incomplete_stream": "a stream ended without [DONE] or without a finish_reason",
    "error_event": "the server reported an error inside the stream",
    "finish_error": "a choice finished with finish_reason 'error'",
    "invalid_response": "a body or event that is not the expected JSON",
}
"""Every error kind a record may carry, and what it means."""


@dataclass
class RequestRecord:
    """One request's outcome. Times are seconds; ``start_s`` and ``token_times_s`` count from
    the benchmark's start, the latencies from the request's own start."""

    index: int
    start_s: float
    ok: bool = False
    error: str | None = None
    detail: str | None = None
    status: int | None = None
    ttft_s: float | None = None
    """Streaming: until the first content chunk. Non-streaming: the whole answer (= e2e)."""
    e2e_s: float | None = None
    """Until the last byte (success) or until the failure was seen."""
    token_times_s: list[float] = field(default_factory=list)
    """Arrival of each content-bearing chunk (streaming only)."""
    output_tokens: int = 0
    prompt_tokens: int | None = None
    tokens_source: str = "usage"
    """``usage``: the server's count. Without one: ``max_tokens`` (finished at the length limit),
    ``chunks`` (content chunks counted; a lower bound), ``missing`` (not streamed: unknown)."""
    finish_reason: str | None = None

    @property
    def itl_s(self) -> list[float]:
        """Gaps between consecutive content chunks."""
        t = self.token_times_s
        return [b - a for a, b in itertools.pairwise(t)]

    @property
    def tpot_s(self) -> float | None:
        """Mean time per output token after the first (streaming, two tokens or more)."""
        if not self.token_times_s or self.ttft_s is None or self.e2e_s is None or self.output_tokens < 2:
            return None
        return (self.e2e_s - self.ttft_s) / (self.output_tokens - 1)

    def to_json(self) -> dict[str, Any]:
        """Every field, with the derived ``tpot_s`` and the count of content ``chunks``."""
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        out.update(tpot_s=self.tpot_s, chunks=len(self.token_times_s))
        return out


@dataclass
class BenchResult:
    workload: Workload
    records: list[RequestRecord]
    duration_s: float
    """From the first request's start to the last one's end."""
    started_at: str
    """UTC wall-clock time of the start, ISO 8601."""
    interrupted: bool = False
    """Stopped early (Ctrl-C): the records are the requests that had finished."""


class LoadGenerator:
    """Runs one workload. ``on_result`` is called as each request ends (a progress bar)."""

    def __init__(
        self,
        workload: Workload,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        clock: Clock = time.perf_counter,
        sleep: Sleep = asyncio.sleep,
        on_result: OnResult | None = None,
    ) -> None:
        self.workload = workload
        self._transport = transport
        self._clock = clock
        self._sleep = sleep
        self._on_result = on_result
        self._t0 = 0.0
        self._started_at = ""
        self._records: list[RequestRecord] = []

    async def run(self) -> BenchResult:
        """Send the whole workload; when cancelled, :meth:`result` still has what finished."""
        w = self.workload
        cap = w.concurrency or 0
        limits = httpx.Limits(max_connections=cap or None, max_keepalive_connections=cap or None)
        self._started_at = datetime.now(UTC).isoformat(timespec="seconds")
        records: list[RequestRecord] = []
        self._records = records
        async with httpx.AsyncClient(
            base_url=w.url,
            transport=self._transport,
            timeout=httpx.Timeout(w.timeout_s),
            limits=limits,
            headers=w.headers(),
        ) as http:
            self._t0 = self._clock()
            if w.rate is None:
                await self._closed_loop(http, records)
            else:
                await self._poisson(http, records, w.rate)
        return self.result()

    def result(self, *, interrupted: bool = False) -> BenchResult:
        """The requests finished so far, in index order."""
        records = sorted(self._records, key=lambda r: r.index)
        end = max((r.start_s + (r.e2e_s or 0.0) for r in records), default=0.0)
        return BenchResult(
            workload=self.workload,
            records=records,
            duration_s=end,
            started_at=self._started_at,
            interrupted=interrupted,
        )

    def _elapsed(self) -> float:
        return self._clock() - self._t0

    def _more(self, index: int, at_s: float) -> bool:
        w = self.workload
        if w.requests is not None and index >= w.requests:
            return False
        return w.duration_s is None or at_s < w.duration_s

    async def _closed_loop(self, http: httpx.AsyncClient, records: list[RequestRecord]) -> None:
        counter = itertools.count()

        async def client() -> None:
            while self._more(index := next(counter), self._elapsed()):
                self._done(records, await self.send(http, index))

        await asyncio.gather(*(client() for _ in range(self.workload.concurrency or 1)))

    async def _poisson(self, http: httpx.AsyncClient, records: list[RequestRecord], rate: float) -> None:
        w = self.workload
        rng = random.Random(f"llmos-bench-arrivals:{w.seed}")
        gate = asyncio.Semaphore(w.concurrency) if w.concurrency else None
        tasks: list[asyncio.Task[None]] = []

        async def one(index: int) -> None:
            if gate is None:
                self._done(records, await self.send(http, index))
                return
            async with gate:
                self._done(records, await self.send(http, index))

        at = 0.0
        for index in itertools.count():
            if index:
                at += rng.expovariate(rate)
            if not self._more(index, at):
                break
            delay = at - self._elapsed()
            if delay > 0:
                await self._sleep(delay)
            tasks.append(asyncio.create_task(one(index)))
        await asyncio.gather(*tasks)

    def _done(self, records: list[RequestRecord], record: RequestRecord) -> None:
        records.append(record)
        if self._on_result is not None:
            self._on_result(record)

    async def send(self, http: httpx.AsyncClient, index: int) -> RequestRecord:
        """Send request ``index`` and record how it went (never raises for a failed request)."""
        w = self.workload
        start = self._clock()
        record = RequestRecord(index=index, start_s=start - self._t0)
        try:
            if w.stream:
                await self._stream(http, w.body(index), record, start)
            else:
                await self._whole(http, w.body(index), record, start)
        except httpx.TimeoutException as exc:
            self._fail(record, "timeout", str(exc) or type(exc).__name__, start)
        except httpx.ConnectError as exc:
            self._fail(record, "connect", str(exc), start)
        except httpx.TransportError as exc:
            kind = "incomplete_stream" if record.token_times_s else "transport"
            self._fail(record, kind, f"{type(exc).__name__}: {exc}", start)
        return record

    def _fail(self, record: RequestRecord, kind: str, detail: str, start: float) -> None:
        record.ok = False
        record.error = kind
        record.detail = detail[:300]
        record.e2e_s = self._clock() - start

    async def _whole(
        self, http: httpx.AsyncClient, body: dict[str, Any], rec: RequestRecord, start: float
    ) -> None:
        response = await http.post(self.workload.path, json=body)
        rec.status = response.status_code
        if not response.is_success:
            return self._fail(rec, f"http_{response.status_code}", response.text, start)
        try:
            payload = response.json()
            choices = payload["choices"]
            rec.finish_reason = choices[0].get("finish_reason")
        except (ValueError, KeyError, IndexError, TypeError, AttributeError) as exc:
            return self._fail(rec, "invalid_response", f"{type(exc).__name__}: {exc}", start)
        rec.e2e_s = rec.ttft_s = self._clock() - start
        usage = payload.get("usage") or {}
        rec.prompt_tokens = usage.get("prompt_tokens")
        rec.output_tokens = int(usage.get("completion_tokens") or 0)
        rec.tokens_source = "usage" if "completion_tokens" in usage else "missing"
        if rec.finish_reason == "error":
            return self._fail(rec, "finish_error", "a choice finished with an error", start)
        rec.ok = True
        return None

    async def _stream(
        self, http: httpx.AsyncClient, body: dict[str, Any], rec: RequestRecord, start: float
    ) -> None:
        done = False
        end = start
        usage: dict[str, Any] | None = None
        async with http.stream("POST", self.workload.path, json=body) as response:
            rec.status = response.status_code
            if not response.is_success:
                await response.aread()
                return self._fail(rec, f"http_{response.status_code}", response.text, start)
            decoder = SSEDecoder()
            async for chunk in response.aiter_bytes():
                now = self._clock()
                for event in decoder.feed(chunk):
                    if event.data.strip() == "[DONE]":
                        done, end = True, now
                        break
                    try:
                        payload = json.loads(event.data)
                        if not isinstance(payload, dict):
                            raise TypeError("an event that is not a JSON object")
                        usage = self._event(payload, rec, now - self._t0) or usage
                    except (ValueError, TypeError, AttributeError) as exc:
                        return self._fail(rec, "invalid_response", f"{type(exc).__name__}: {exc}", start)
                    if payload.get("error") is not None:
                        return self._fail(rec, "error_event", json.dumps(payload["error"]), start)
                if done:
                    break
        if rec.token_times_s:
            rec.ttft_s = rec.token_times_s[0] - (start - self._t0)
        if usage is not None and "completion_tokens" in usage:
            rec.output_tokens = int(usage["completion_tokens"])
            rec.prompt_tokens = usage.get("prompt_tokens")
        elif rec.finish_reason == "length":
            # No usage sent, but the answer stopped at the length limit: exactly max_tokens tokens.
            rec.output_tokens = self.workload.max_tokens
            rec.tokens_source = "max_tokens"
        else:
            # A chunk may carry more than one token (text held back at a stop-string prefix).
            rec.output_tokens = len(rec.token_times_s)
            rec.tokens_source = "chunks"
        if not done or rec.finish_reason is None:
            missing = "[DONE]" if not done else "a finish_reason"
            return self._fail(rec, "incomplete_stream", f"the stream ended without {missing}", start)
        if rec.finish_reason == "error":
            return self._fail(rec, "finish_error", "a choice finished with an error", start)
        rec.e2e_s = end - start
        rec.ok = True
        return None

    @staticmethod
    def _event(payload: dict[str, Any], rec: RequestRecord, at_s: float) -> dict[str, Any] | None:
        """Account one streamed chunk; return its usage, if it carries one."""
        content = False
        for choice in payload.get("choices") or []:
            delta = choice.get("delta") or {}
            text = choice.get("text") or delta.get("content") or delta.get("reasoning_content")
            if text or delta.get("tool_calls"):
                content = True
            if choice.get("finish_reason"):
                rec.finish_reason = choice["finish_reason"]
        if content:
            rec.token_times_s.append(at_s)
        usage = payload.get("usage")
        return usage if isinstance(usage, dict) else None


def run_benchmark(workload: Workload, **kwargs: Any) -> BenchResult:
    """Run ``workload`` to the end in a fresh event loop (for scripts; see :class:`LoadGenerator`)."""
    return asyncio.run(LoadGenerator(workload, **kwargs).run())
