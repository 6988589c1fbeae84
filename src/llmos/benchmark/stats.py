"""The numbers a benchmark reports, from its request records.

* Percentiles interpolate linearly between the closest ranks (numpy's default ``linear``
  method): the p-th percentile of sorted ``x[0..n-1]`` is at rank ``p/100 * (n-1)``.
* Latency distributions (TTFT, TPOT, inter-token latency, end-to-end) are over *successful*
  requests only, in milliseconds.
* Throughput divides by the run's duration (first start to last end): requests/s and output
  tokens/s count successful requests; ``delivered_output_tokens`` adds the tokens failed streams
  had received before they broke.
* Goodput: the requests that succeeded *and* met every given SLO, as a fraction of all requests
  sent and as a rate per second. An SLO on a value a request did not measure (TPOT of a
  non-streamed or one-token answer) does not fail it.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from llmos.benchmark.loadgen import RequestRecord

PERCENTILES = (50, 90, 95, 99)


def percentile(values: Sequence[float], p: float) -> float | None:
    """The ``p``-th percentile (0-100) of ``values`` by linear interpolation; None if empty."""
    if not 0 <= p <= 100 or math.isnan(p):
        raise ValueError(f"percentile must be in [0, 100], not {p}")
    if not values:
        return None
    xs = sorted(values)
    rank = p / 100 * (len(xs) - 1)
    low = math.floor(rank)
    high = min(low + 1, len(xs) - 1)
    return xs[low] + (xs[high] - xs[low]) * (rank - low)


@dataclass(frozen=True)
class Distribution:
    """Summary of one latency (milliseconds); every field None when there were no values."""

    count: int
    mean: float | None
    min: float | None
    max: float | None
    p50: float | None
    p90: float | None
    p95: float | None
    p99: float | None

    @classmethod
    def of(cls, values_s: Sequence[float]) -> Distribution:
        """The distribution of ``values_s`` (seconds), reported in milliseconds."""
        ms = [v * 1000.0 for v in values_s]
        p = {q: percentile(ms, q) for q in PERCENTILES}
        return cls(
            count=len(ms),
            mean=sum(ms) / len(ms) if ms else None,
            min=min(ms, default=None),
            max=max(ms, default=None),
            p50=p[50],
            p90=p[90],
            p95=p[95],
            p99=p[99],
        )


@dataclass(frozen=True)
class SLO:
    """Service-level objectives in milliseconds; None: no objective on that value."""

    ttft_ms: float | None = None
    tpot_ms: float | None = None
    e2e_ms: float | None = None

    def met_by(self, record: RequestRecord) -> bool:
        if not record.ok:
            return False
        checks = ((self.ttft_ms, record.ttft_s), (self.tpot_ms, record.tpot_s), (self.e2e_ms, record.e2e_s))
        return all(limit is None or value is None or value * 1000.0 <= limit for limit, value in checks)


@dataclass(frozen=True)
class Summary:
    requests: int
    """Requests sent (successful or not)."""
    completed: int
    failed: int
    errors: dict[str, int]
    """Failed requests by kind (see ``loadgen.ERROR_KINDS``)."""
    duration_s: float
    request_throughput: float
    """Successful requests per second."""
    prompt_tokens: int
    output_tokens: int
    """Output tokens of successful requests."""
    delivered_output_tokens: int
    """Output tokens received, failed streams included."""
    output_throughput: float
    """Output tokens of successful requests per second."""
    total_token_throughput: float
    """(Prompt + output) tokens of successful requests per second."""
    ttft: Distribution
    tpot: Distribution
    itl: Distribution
    e2e: Distribution
    slo: SLO
    goodput_requests: int
    goodput_fraction: float
    goodput_rate: float
    """Requests meeting every SLO per second."""
    tokens_source: dict[str, int]
    """How output tokens were counted: ``usage`` (the server's count) or ``chunks``."""

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def summarize(records: Sequence[RequestRecord], duration_s: float, slo: SLO | None = None) -> Summary:
    slo = slo or SLO()
    ok = [r for r in records if r.ok]
    errors = Counter(r.error or "unknown" for r in records if not r.ok)
    output = sum(r.output_tokens for r in ok)
    prompt = sum(r.prompt_tokens or 0 for r in ok)
    good = sum(1 for r in records if slo.met_by(r))

    def rate(n: float) -> float:
        return n / duration_s if duration_s > 0 else 0.0

    return Summary(
        requests=len(records),
        completed=len(ok),
        failed=len(records) - len(ok),
        errors=dict(sorted(errors.items())),
        duration_s=duration_s,
        request_throughput=rate(len(ok)),
        prompt_tokens=prompt,
        output_tokens=output,
        delivered_output_tokens=output + sum(len(r.token_times_s) for r in records if not r.ok),
        output_throughput=rate(output),
        total_token_throughput=rate(output + prompt),
        ttft=Distribution.of([r.ttft_s for r in ok if r.ttft_s is not None]),
        tpot=Distribution.of([t for r in ok if (t := r.tpot_s) is not None]),
        itl=Distribution.of([gap for r in ok for gap in r.itl_s]),
        e2e=Distribution.of([r.e2e_s for r in ok if r.e2e_s is not None]),
        slo=slo,
        goodput_requests=good,
        goodput_fraction=good / len(records) if records else 0.0,
        goodput_rate=rate(good),
        tokens_source=dict(Counter(r.tokens_source for r in ok)),
    )
