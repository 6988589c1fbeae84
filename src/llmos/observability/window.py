"""A short memory of finished requests, for the console's live charts (``/api/metrics/summary``).

Prometheus histograms answer "since the server started"; a dashboard wants "the last minute".
:class:`RecentRequests` keeps the last few thousand finished requests and summarises those that
ended within a window: count, errors, and p50/p95/mean of TTFT, TPOT and end-to-end latency.
"""

from __future__ import annotations

import math
import threading
from collections import deque
from dataclasses import dataclass


@dataclass(frozen=True)
class Sample:
    """One finished request. Times in seconds on the metrics clock; None where not measured."""

    ended: float
    model: str
    tenant: str
    status: str
    ttft: float | None
    tpot: float | None
    e2e: float
    completion_tokens: int


@dataclass(frozen=True)
class Quantiles:
    count: int
    mean: float | None
    p50: float | None
    p95: float | None
    max: float | None

    def as_dict(self) -> dict[str, float | int | None]:
        return {"count": self.count, "mean": self.mean, "p50": self.p50, "p95": self.p95, "max": self.max}


def quantiles(values: list[float]) -> Quantiles:
    """Mean and nearest-rank p50/p95/max of ``values`` (all None when empty)."""
    if not values:
        return Quantiles(0, None, None, None, None)
    xs = sorted(values)

    def rank(q: float) -> float:
        return xs[min(len(xs) - 1, max(0, math.ceil(q * len(xs)) - 1))]

    return Quantiles(len(xs), sum(xs) / len(xs), rank(0.5), rank(0.95), xs[-1])


class RecentRequests:
    """The last ``capacity`` finished requests (thread-safe)."""

    def __init__(self, capacity: int = 4096) -> None:
        self._samples: deque[Sample] = deque(maxlen=max(1, capacity))
        self._lock = threading.Lock()

    def add(self, sample: Sample) -> None:
        with self._lock:
            self._samples.append(sample)

    def since(self, start: float, model: str | None = None) -> list[Sample]:
        """Samples that ended at or after ``start`` (for one model, or all)."""
        with self._lock:
            items = list(self._samples)
        return [s for s in items if s.ended >= start and (model is None or s.model == model)]


def summarize(samples: list[Sample], window_s: float) -> dict[str, object]:
    """Requests, errors, tokens/s and latency quantiles of ``samples`` over ``window_s`` seconds."""
    ok = [s for s in samples if s.status == "ok"]
    tokens = sum(s.completion_tokens for s in samples)
    return {
        "requests": len(samples),
        "errors": sum(1 for s in samples if s.status not in ("ok", "cancelled")),
        "completion_tokens": tokens,
        "tokens_per_s": tokens / window_s if window_s > 0 else 0.0,
        "ttft_s": quantiles([s.ttft for s in ok if s.ttft is not None]).as_dict(),
        "tpot_s": quantiles([s.tpot for s in ok if s.tpot is not None]).as_dict(),
        "e2e_s": quantiles([s.e2e for s in ok]).as_dict(),
    }


class TokenRate:
    """Completion tokens per whole second of the metrics clock, for the last ``keep_s`` seconds
    (counted as they stream, so a long request's tokens spread over its life)."""

    def __init__(self, keep_s: int = 900) -> None:
        self._keep = keep_s
        self._counts: dict[int, int] = {}
        self._lock = threading.Lock()

    def add(self, now: float, tokens: int) -> None:
        second = math.floor(now)
        with self._lock:
            self._counts[second] = self._counts.get(second, 0) + tokens
            if len(self._counts) > self._keep:
                for old in [s for s in self._counts if s < second - self._keep]:
                    del self._counts[old]

    def between(self, start: float, end: float) -> int:
        with self._lock:
            return sum(n for s, n in self._counts.items() if start <= s < end)


def history(
    samples: list[Sample], rate: TokenRate, now: float, span_s: float, step_s: float
) -> list[dict[str, float | None]]:
    """Points every ``step_s`` over the last ``span_s`` seconds: ``t`` (seconds relative to
    ``now``, ≤ 0), tokens/s, requests/min ended, and the TTFT p50/p95 and end-to-end p50 of the
    requests that ended in that step."""
    out: list[dict[str, float | None]] = []
    steps = max(1, int(span_s // step_s))
    for i in range(steps, 0, -1):
        end = now - (i - 1) * step_s
        start = end - step_s
        ended = [s for s in samples if start <= s.ended < end]
        ok = [s for s in ended if s.status == "ok"]
        ttft = quantiles([s.ttft for s in ok if s.ttft is not None])
        out.append(
            {
                "t": end - now,
                "tokens_per_s": rate.between(start, end) / step_s,
                "requests_per_min": len(ended) * 60.0 / step_s,
                "ttft_p50_s": ttft.p50,
                "ttft_p95_s": ttft.p95,
                "e2e_p50_s": quantiles([s.e2e for s in ok]).p50,
            }
        )
    return out
