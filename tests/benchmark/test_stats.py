from __future__ import annotations

import pytest

from llmos.benchmark.loadgen import RequestRecord
from llmos.benchmark.stats import SLO, Distribution, percentile, summarize


def test_percentiles_interpolate_between_ranks() -> None:
    xs = [4.0, 1.0, 3.0, 2.0]  # sorted: 1 2 3 4, ranks 0..3
    assert percentile(xs, 0) == 1.0
    assert percentile(xs, 100) == 4.0
    assert percentile(xs, 50) == pytest.approx(2.5)  # rank 1.5
    assert percentile(xs, 95) == pytest.approx(3.85)  # rank 2.85
    assert percentile(xs, 99) == pytest.approx(3.97)  # rank 2.97
    assert percentile([5.0], 99) == 5.0
    assert percentile([], 50) is None
    with pytest.raises(ValueError):
        percentile(xs, 101)


def test_distribution_is_in_milliseconds() -> None:
    d = Distribution.of([0.010, 0.020, 0.030])
    assert (d.count, d.min, d.max) == (3, pytest.approx(10.0), pytest.approx(30.0))
    assert d.mean == pytest.approx(20.0) and d.p50 == pytest.approx(20.0)
    assert d.p90 == pytest.approx(28.0)  # rank 1.8 → 20 + 0.8 * 10
    empty = Distribution.of([])
    assert empty.count == 0 and empty.p50 is None and empty.mean is None


def stream_record(index: int, start: float, ttft: float, gaps: list[float], tokens: int) -> RequestRecord:
    times = [start + ttft]
    for g in gaps:
        times.append(times[-1] + g)
    return RequestRecord(
        index=index,
        start_s=start,
        ok=True,
        ttft_s=ttft,
        e2e_s=times[-1] - start,
        token_times_s=times,
        output_tokens=tokens,
        prompt_tokens=10,
        finish_reason="length",
    )


def test_summary_by_hand() -> None:
    a = stream_record(0, 0.0, ttft=0.1, gaps=[0.02, 0.02, 0.02], tokens=4)  # e2e 0.16, tpot 0.02
    b = stream_record(1, 0.0, ttft=0.3, gaps=[0.05, 0.05, 0.05], tokens=4)  # e2e 0.45, tpot 0.05
    failed = RequestRecord(
        index=2, start_s=0.5, error="incomplete_stream", e2e_s=0.2, token_times_s=[0.6, 0.65]
    )
    refused = RequestRecord(index=3, start_s=0.5, error="http_503", status=503, e2e_s=0.01)
    s = summarize([a, b, failed, refused], duration_s=1.0, slo=SLO(ttft_ms=200, tpot_ms=30))

    assert (s.requests, s.completed, s.failed) == (4, 2, 2)
    assert s.errors == {"http_503": 1, "incomplete_stream": 1}
    assert s.output_tokens == 8 and s.delivered_output_tokens == 10 and s.prompt_tokens == 20
    assert s.output_throughput == pytest.approx(8.0) and s.request_throughput == pytest.approx(2.0)
    assert s.total_token_throughput == pytest.approx(28.0)
    assert s.ttft.p50 == pytest.approx(200.0)  # between 100 and 300
    assert s.tpot.min == pytest.approx(20.0) and s.tpot.max == pytest.approx(50.0)
    assert s.itl.count == 6 and s.itl.p50 == pytest.approx(35.0)  # three 20s, three 50s
    assert s.e2e.max == pytest.approx(450.0)
    # Only ``a`` meets TTFT <= 200 ms and TPOT <= 30 ms; failures never count.
    assert s.goodput_requests == 1
    assert s.goodput_fraction == pytest.approx(0.25) and s.goodput_rate == pytest.approx(1.0)


def test_an_slo_on_an_unmeasured_value_does_not_fail_a_request() -> None:
    whole = RequestRecord(index=0, start_s=0.0, ok=True, ttft_s=0.5, e2e_s=0.5, output_tokens=9)
    assert whole.tpot_s is None  # not streamed: no per-token timing
    assert SLO(tpot_ms=1).met_by(whole)
    assert not SLO(e2e_ms=499).met_by(whole)
    assert SLO(ttft_ms=500, e2e_ms=500).met_by(whole)


def test_no_slo_means_every_successful_request_is_good() -> None:
    ok = stream_record(0, 0.0, 0.1, [0.1], 2)
    bad = RequestRecord(index=1, start_s=0.0, error="timeout", e2e_s=600.0)
    s = summarize([ok, bad], duration_s=0.0)
    assert s.goodput_requests == 1 and s.goodput_fraction == 0.5
    assert s.output_throughput == 0.0  # no duration: no rate rather than a division by zero
