from __future__ import annotations

import asyncio
import itertools
import statistics
from typing import Any

import httpx
import pytest

from benchmark.fake_openai import FakeClock, FakeOpenAI, Script
from llmos.benchmark.loadgen import BenchResult, LoadGenerator
from llmos.benchmark.stats import summarize
from llmos.benchmark.workload import Workload
from llmos.errors import InvalidRequest

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def workload(**kw: Any) -> Workload:
    base: dict[str, Any] = {"url": "http://fake:1", "model": "m:1", "requests": 3, "max_tokens": 5}
    return Workload(**{**base, **kw})


async def run(w: Workload, server: FakeOpenAI, **kw: Any) -> BenchResult:
    gen = LoadGenerator(w, transport=server.transport(), clock=server.clock, sleep=server.clock.sleep, **kw)
    return await gen.run()


async def test_streaming_latencies_are_what_the_server_scripted() -> None:
    server = FakeOpenAI(FakeClock(), script=lambda n: Script(ttft_s=0.1 * (n + 1), gap_s=0.02, tokens=5))
    seen: list[int] = []
    result = await run(workload(), server, on_result=lambda r: seen.append(r.index))

    assert seen == [0, 1, 2]
    for i, r in enumerate(result.records):
        assert r.ok and r.error is None and r.finish_reason == "length"
        assert r.ttft_s == pytest.approx(0.1 * (i + 1))
        assert r.itl_s == pytest.approx([0.02] * 4)
        assert r.tpot_s == pytest.approx(0.02)
        assert r.e2e_s == pytest.approx(0.1 * (i + 1) + 0.08)
        assert (r.output_tokens, r.prompt_tokens, r.tokens_source) == (5, 7, "usage")
    # back to back: each request starts when the previous one ends
    assert [r.start_s for r in result.records] == pytest.approx([0.0, 0.18, 0.46])
    assert result.duration_s == pytest.approx(0.84)
    s = summarize(result.records, result.duration_s)
    assert s.output_throughput == pytest.approx(15 / 0.84)


async def test_requests_are_seeded_and_ask_for_exact_lengths() -> None:
    server = FakeOpenAI(FakeClock())
    await run(workload(seed=3, prompt_tokens=40), server)
    again = FakeOpenAI(FakeClock())
    await run(workload(seed=3, prompt_tokens=40), again)
    other = FakeOpenAI(FakeClock())
    await run(workload(seed=4, prompt_tokens=40), other)

    assert server.bodies == again.bodies
    prompts = [b["messages"][0]["content"] for b in server.bodies]
    assert len(set(prompts)) == 3 and prompts != [b["messages"][0]["content"] for b in other.bodies]
    assert all(34 <= len(p.split()) <= 42 for p in prompts)  # ~1 token a word, ~8 for the preamble
    first = server.bodies[0]
    assert first["ignore_eos"] is True and first["min_tokens"] == first["max_tokens"] == 5
    assert first["stream"] is True
    assert first["stream_options"] == {"include_usage": True} and first["model"] == "m:1"


async def test_completions_endpoint_and_extra_body() -> None:
    server = FakeOpenAI(FakeClock())
    w = workload(endpoint="completions", ignore_eos=False, extra_body={"top_k": 1})
    result = await run(w, server)
    assert all(r.ok and r.output_tokens == 5 for r in result.records)
    assert "prompt" in server.bodies[0]
    assert "ignore_eos" not in server.bodies[0] and "min_tokens" not in server.bodies[0]
    assert server.bodies[0]["top_k"] == 1


async def test_without_usage_tokens_come_from_the_length_limit_or_the_chunks() -> None:
    server = FakeOpenAI(
        FakeClock(), script=lambda n: Script(tokens=4, usage=False, finish="length" if n == 0 else "stop")
    )
    result = await run(workload(requests=2, max_tokens=4), server)
    at_limit, stopped = result.records
    assert at_limit.ok and (at_limit.output_tokens, at_limit.tokens_source) == (4, "max_tokens")
    assert stopped.ok and (stopped.output_tokens, stopped.tokens_source) == (4, "chunks")
    assert stopped.prompt_tokens is None


async def test_non_streaming_times_the_whole_answer() -> None:
    server = FakeOpenAI(FakeClock(), script=lambda _n: Script(ttft_s=0.2, gap_s=0.05, tokens=9))
    result = await run(workload(stream=False, requests=2), server)
    for r in result.records:
        assert r.ok and r.output_tokens == 9
        assert r.e2e_s == pytest.approx(0.6) and r.ttft_s == r.e2e_s
        assert r.tpot_s is None and r.itl_s == []
    assert "stream_options" not in server.bodies[0]


@pytest.mark.parametrize(
    ("script", "kind"),
    [
        (Script(end="no_finish"), "incomplete_stream"),
        (Script(end="no_done"), "incomplete_stream"),
        (Script(end="transport_error"), "incomplete_stream"),
        (Script(end="error_event"), "error_event"),
        (Script(end="finish_error"), "finish_error"),
        (Script(status=503), "http_503"),
    ],
)
async def test_broken_streams_are_errors_by_kind(script: Script, kind: str) -> None:
    server = FakeOpenAI(FakeClock(), script=lambda n: script if n == 1 else Script())
    result = await run(workload(), server)
    ok, broken, after = result.records
    assert ok.ok and after.ok
    assert not broken.ok and broken.error == kind and broken.detail
    s = summarize(result.records, result.duration_s)
    assert s.errors == {kind: 1} and s.completed == 2


async def test_an_unreachable_server_is_a_connect_error() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    clock = FakeClock()
    gen = LoadGenerator(workload(requests=2), transport=httpx.MockTransport(refuse), clock=clock)
    result = await gen.run()
    assert [r.error for r in result.records] == ["connect", "connect"]


async def test_closed_loop_keeps_exactly_concurrency_requests_in_flight() -> None:
    server = FakeOpenAI(FakeClock(), yields_per_request=5)
    result = await run(workload(stream=False, concurrency=4, requests=10), server)
    assert sorted(r.index for r in result.records) == list(range(10))
    assert server.max_in_flight == 4 and len(server.bodies) == 10


async def test_duration_stops_starting_new_requests() -> None:
    # Each request takes 0.1 + 0.05 * 4 = 0.3 s: starts at 0, 0.3, 0.6, 0.9; none at 1.2.
    server = FakeOpenAI(FakeClock(), script=lambda _n: Script(ttft_s=0.1, gap_s=0.05, tokens=5))
    result = await run(workload(requests=None, duration_s=1.0), server)
    assert [r.start_s for r in result.records] == pytest.approx([0.0, 0.3, 0.6, 0.9])
    assert result.duration_s == pytest.approx(1.2)


async def test_poisson_arrivals_are_seeded_and_at_the_rate() -> None:
    async def starts(seed: int) -> list[float]:
        server = FakeOpenAI(FakeClock(), script=lambda _n: Script(ttft_s=0.0, gap_s=0.0))
        result = await run(workload(rate=20.0, concurrency=None, requests=400, seed=seed), server)
        assert all(r.ok for r in result.records)
        return [r.start_s for r in result.records]

    a, b, c = await starts(1), await starts(1), await starts(2)
    assert a == b and a != c
    assert a[0] == 0.0
    gaps = [y - x for x, y in itertools.pairwise(a)]
    assert all(g >= 0 for g in gaps)
    assert statistics.mean(gaps) == pytest.approx(1 / 20, rel=0.1)
    # exponential gaps: the standard deviation is close to the mean
    assert statistics.stdev(gaps) == pytest.approx(1 / 20, rel=0.15)


async def test_poisson_with_a_cap_never_exceeds_it() -> None:
    server = FakeOpenAI(FakeClock(), yields_per_request=20)
    result = await run(workload(stream=False, rate=1000.0, concurrency=3, requests=12), server)
    assert len(result.records) == 12 and all(r.ok for r in result.records)
    assert server.max_in_flight == 3


async def test_poisson_duration_bounds_the_arrivals() -> None:
    server = FakeOpenAI(FakeClock(), script=lambda _n: Script(ttft_s=0.0, gap_s=0.0))
    result = await run(workload(rate=10.0, concurrency=None, requests=None, duration_s=5.0), server)
    assert result.records and all(r.start_s < 5.0 for r in result.records)
    assert 30 <= len(result.records) <= 70  # 50 expected; fixed by the seed


@pytest.mark.parametrize(
    ("kw", "param"),
    [
        ({"url": "ftp://x"}, "url"),
        ({"model": ""}, "model"),
        ({"concurrency": 0}, "concurrency"),
        ({"rate": 0.0}, "rate"),
        ({"requests": 0}, "requests"),
        ({"duration_s": -1.0}, "duration"),
        ({"max_tokens": 0}, "max_tokens"),
    ],
)
def test_bad_settings_are_invalid_requests(kw: dict[str, Any], param: str) -> None:
    with pytest.raises(InvalidRequest) as info:
        workload(**kw)
    assert info.value.param == param


def test_urls_are_normalized_to_the_api_root() -> None:
    assert workload(url="http://h:1").url == "http://h:1/v1"
    assert workload(url="http://h:1/").url == "http://h:1/v1"
    assert workload(url="http://h:1/v1/").url == "http://h:1/v1"
    assert workload(url="https://h/openai/v1").url == "https://h/openai/v1"
    assert workload(requests=None).requests == 100
    assert "api_key" not in workload(api_key="sk-secret").describe()


async def test_a_cancelled_run_keeps_the_finished_requests() -> None:
    server = FakeOpenAI(FakeClock())
    gen: LoadGenerator

    def stop_after_two(record: Any) -> None:
        if len(server.bodies) == 2:
            task.cancel()

    gen = LoadGenerator(
        workload(requests=10),
        transport=server.transport(),
        clock=server.clock,
        sleep=server.clock.sleep,
        on_result=stop_after_two,
    )
    task = asyncio.ensure_future(gen.run())
    with pytest.raises(asyncio.CancelledError):
        await task
    partial = gen.result(interrupted=True)
    assert partial.interrupted and [r.index for r in partial.records] == [0, 1]
    assert all(r.ok for r in partial.records) and partial.duration_s > 0
