"""An engine core on a thread over the fake engine, seen through its client: streams, immediate
admission, queue positions, cancellation, drain, death, calls beside a running step."""

from __future__ import annotations

import asyncio
import os

import pytest

from llmos.config import SchedulerConfig
from llmos.core import CoreClient
from llmos.engine.fake import FakeEngine
from llmos.errors import EngineDeadError, InvalidRequest, Overloaded, RateLimited
from polling import until

from .conftest import Gate, Harness, fake_spec, request

pytestmark = pytest.mark.anyio


def text(outs: list[object]) -> str:
    return "".join(o.text for o in outs)  # type: ignore[attr-defined]


async def test_streams_through_the_core_match_the_engine(harness: Harness) -> None:
    client = await harness.client(fake_spec(n_slots=4))
    streams = [client.submit(request(f"r{i}", max_tokens=20)) for i in range(8)]
    results = await asyncio.wait_for(asyncio.gather(*(s.collect() for s in streams)), timeout=10)
    expected = FakeEngine()
    for outs in results:
        assert len(text(outs)) == 20 and outs[-1].completion_tokens == 20
        assert outs[-1].finish_reason == "length"
    assert text(results[0]) == text(results[7])  # same prompt, greedy: same text
    assert expected.detokenize([t for o in results[0] for t in o.token_ids]) == text(results[0])
    stats = await client.stats()
    assert stats.completed == 8 and stats.running == 0 and stats.queued == 0
    assert client.in_flight == 0
    assert sorted(harness.kinds("finish")) == sorted(f"r{i}" for i in range(8))


async def test_admission_answers_at_once_from_counts_and_requests_sent_since(harness: Harness) -> None:
    gate = Gate()
    config = SchedulerConfig(policy="fcfs", max_queue=3, max_queue_per_tenant=2)
    spec = fake_spec(n_slots=1, step_cost_s=0.001, scheduler=config)
    client = await harness.client(spec, sleep=gate.sleep)
    a1 = client.submit(request("a1", tenant="A", max_tokens=50))
    a2 = client.submit(request("a2", tenant="A"))
    # Nothing has reached the core's step yet: the client counts what it sent.
    assert (a1.queue_position, a1.estimated_start) == (0, 0.0)
    assert a2.queue_position == 1 and a2.estimated_start == pytest.approx(1.0, abs=0.1)
    with pytest.raises(RateLimited) as limited:
        client.submit(request("a3", tenant="A"))
    assert limited.value.retry_after >= 1.0
    client.submit(request("b1", tenant="B"))
    with pytest.raises(Overloaded) as full:
        client.submit(request("c1", tenant="C"))
    assert full.value.retry_after >= 1.0
    assert client.rejected == 2 and harness.kinds("reject") == ["a3", "c1"]
    await until(gate.waiting.is_set, what="the core inside its first step")  # it took them
    gate.step()
    await until(lambda: client.running == 1, what="one request running")
    assert client.queued == 2 and a1.queue_position is None and a1.estimated_start == 0.0
    gate.step()  # by the end of a second step the core has taken every add and placed it
    await until(lambda: a2.queue_position == 0, what="a2 first in the queue")  # the core's own word now
    client.submit(request("c1", tenant="C"))  # one left the queue: room again
    gate.open()
    assert (await client.stats()).rejected == 2


async def test_leaving_a_stream_early_aborts_the_request(harness: Harness) -> None:
    client = await harness.client(fake_spec(n_ctx=10**8))
    stream = client.submit(request("reader", max_tokens=10**7))
    got = 0
    async for _ in stream:
        got += 1
        if got == 3:
            break
    await until(lambda: client.in_flight == 0, what="nothing in flight")
    stats = await client.stats()
    assert stats.cancelled == 1 and stats.running == 0
    assert await client.sequences() == []


async def test_a_stream_as_a_context_manager_and_iterated_twice(harness: Harness) -> None:
    client = await harness.client(fake_spec(n_slots=1, n_ctx=10**8))
    async with client.submit(request("left", max_tokens=10**6)) as left:
        pass
    await until(lambda: left.done, what="the left stream done")
    assert [o.finish_reason for o in await left.collect()][-1] == "abort"
    twice = client.submit(request("twice", max_tokens=3))
    assert len(text(await twice.collect())) == 3
    assert await asyncio.wait_for(twice.collect(), timeout=1) == []


async def test_drain_lets_short_work_finish_then_refuses(harness: Harness) -> None:
    client = await harness.client(fake_spec(n_slots=2, step_cost_s=0.001))
    short = [client.submit(request(f"s{i}", max_tokens=5)) for i in range(3)]
    await client.drain(5.0)
    for s in short:
        assert (await s.collect())[-1].finish_reason == "length"
    with pytest.raises(Overloaded):
        client.submit(request("late"))


async def test_drain_aborts_what_does_not_finish_in_time(harness: Harness) -> None:
    client = await harness.client(fake_spec(n_slots=1, n_ctx=10**8))
    endless = client.submit(request("endless", max_tokens=10**9))
    queued = client.submit(request("queued", max_tokens=5))
    await until(lambda: endless.queue_position is None, what="the endless request admitted")
    await client.drain(0.05)
    assert (await endless.collect())[-1].finish_reason == "abort"
    with pytest.raises(Overloaded):
        await queued.collect()


async def test_a_dead_engine_fails_everything_and_the_client_says_so(harness: Harness) -> None:
    client = await harness.client(fake_spec(n_slots=2, die_after_steps=5))
    streams = [client.submit(request(f"r{i}", max_tokens=1000)) for i in range(3)]
    for s in streams:
        with pytest.raises(EngineDeadError):
            await asyncio.wait_for(s.collect(), timeout=5)
    await until(lambda: client.dead is not None, what="the client to see the core dead")
    assert harness.dead == [client.dead] and "died" in (client.dead or "")
    with pytest.raises(EngineDeadError):
        client.submit(request("after"))
    with pytest.raises(EngineDeadError):
        await client.render_prompt([{"role": "user", "content": "hi"}])
    health = await client.health()
    assert not health.ok and not client.alive


async def test_render_and_tokenize_are_answered_while_a_step_runs(harness: Harness) -> None:
    gate = Gate()
    client = await harness.client(fake_spec(step_cost_s=0.001), sleep=gate.sleep)
    stream = client.submit(request("busy", max_tokens=3))
    await until(gate.waiting.is_set, what="the core's loop held inside engine.step")
    messages = [{"role": "user", "content": "hi"}]
    tokens = await asyncio.wait_for(client.render_prompt(messages), timeout=5)
    fake = FakeEngine()
    assert tokens == fake.tokenize(fake.render_chat(messages), add_special=False, parse_special=True)
    assert await asyncio.wait_for(client.tokenize(["ab"], add_special=False), timeout=5) == [
        [16 + 97, 16 + 98]
    ]
    assert gate.waiting.is_set() and not stream.done  # still the same step
    gate.open()
    assert (await stream.collect())[-1].finish_reason == "length"


async def test_calls_between_steps(harness: Harness) -> None:
    client = await harness.client(fake_spec(embedding_dim=8))
    vectors = await client.embed([[20, 21], [22]])
    assert len(vectors) == 2 and all(len(v) == 8 for v in vectors)
    assert sum(x * x for x in vectors[0]) == pytest.approx(1.0)
    health = await client.health()
    assert health.ok and health.pid == os.getpid() == client.pid  # a thread host: this process
    client.set_tenant_weights({"gold": 4.0})
    client.set_policy("priority")
    stats = await client.stats()
    assert stats.tenant_weights == {"gold": 4.0} and stats.policy == "priority"
    with pytest.raises(InvalidRequest):
        client.set_policy("lottery")
    with pytest.raises(InvalidRequest):
        client.submit(request("empty", prompt=()))


async def test_a_request_the_engine_refuses_fails_alone(harness: Harness) -> None:
    client = await harness.client()
    bad = client.submit(request("bad", prompt=(1, 99999)))
    ok = client.submit(request("ok"))
    with pytest.raises(InvalidRequest):
        await bad.collect()
    assert (await ok.collect())[-1].finish_reason == "length"


async def test_a_load_failure_is_raised_by_start(harness: Harness) -> None:
    with pytest.raises(InvalidRequest):
        await harness.client(fake_spec(n_slots=0))


async def test_close_stops_the_core_and_fails_nothing_twice(harness: Harness) -> None:
    client = await harness.client()
    done = client.submit(request("done"))
    assert (await done.collect())[-1].finish_reason == "length"
    await client.close()
    await client.close()
    assert not client.alive and harness.dead == []
    with pytest.raises(EngineDeadError):
        await client.stats()
    assert isinstance(client, CoreClient)
