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
