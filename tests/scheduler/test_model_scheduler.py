"""The model scheduler on the fake engine: policies end to end, budget, preemption, admission,
deadlines, cancellation, engine death, queue positions, drain. Virtual time: the fake engine
spends an injected clock, so nothing here sleeps to measure time."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any

import pytest

from llmos.engine.base import SamplingParams, SequenceSpec
from llmos.errors import (
    Conflict,
    DeadlineExceeded,
    EngineDeadError,
    EngineGenerateError,
    InvalidRequest,
    Overloaded,
    RateLimited,
)
from llmos.scheduler import ModelScheduler, RequestHandle
from llmos.scheduler.policies import FcfsPolicy

from .factories import Recorder, VirtualClock, make_engine, make_request, make_scheduler, wait_for


def run(coro: Coroutine[Any, Any, None]) -> None:
    asyncio.run(coro)


def drive(s: ModelScheduler, until: Callable[[], bool], max_iters: int = 10_000) -> int:
    for i in range(max_iters):
        if until():
            return i
        s.step_once()
    raise AssertionError("condition not reached")


def text(outs: list[Any]) -> str:
    return "".join(o.text for o in outs)


# -- policies end to end ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("policy", "expected"),
    [
        ("fcfs", ["a1", "a2", "a3", "b1", "c1"]),
        ("priority", ["b1", "a2", "a1", "c1", "a3"]),
        ("round_robin", ["a1", "b1", "c1", "a2", "a3"]),
        ("fair", ["a1", "b1", "c1", "a2", "a3"]),
    ],
)
def test_admission_order_follows_the_policy(policy: str, expected: list[str]) -> None:
    async def main() -> None:
        clock, rec = VirtualClock(), Recorder()
        s = make_scheduler(
            make_engine(clock, n_slots=1), clock, policy=policy, recorder=rec, aging_seconds=1e6
        )
        specs = [("a1", "A", 3), ("a2", "A", 6), ("a3", "A", 1), ("b1", "B", 9), ("c1", "C", 3)]
        handles = [s.submit(make_request(rid, tenant=t, urgency=u)) for rid, t, u in specs]
        drive(s, lambda: all(h.done for h in handles))
        assert rec.ids("admit") == expected
        assert rec.ids("finish") == expected  # one slot: each runs to the end before the next

    run(main())


def test_priority_aging_low_urgency_never_starves() -> None:
    async def main() -> None:
        clock, rec = VirtualClock(), Recorder()
        s = make_scheduler(
            make_engine(clock, n_slots=1), clock, policy="priority", recorder=rec, aging_seconds=0.05
        )
        n = 0
        handles: list[RequestHandle] = []

        def high() -> None:
            nonlocal n
            n += 1
            handles.append(s.submit(make_request(f"h{n}", urgency=8, max_tokens=4)))

        high()
        high()
        low = s.submit(make_request("low", urgency=2, max_tokens=4))
        for _ in range(5000):
            if low.done:
                break
            while s.snapshot().queued < 3:  # a steady stream: high-urgency work always waiting
                high()
            s.step_once()
        assert low.done
        admitted = rec.ids("admit")
        overtook = admitted.index("low")
        assert overtook > 3  # high work went first for a while...
        assert any(h.request_id not in admitted for h in handles)  # ...but not forever

    run(main())


def test_fair_share_gives_the_light_tenant_about_half_the_tokens() -> None:
    async def share(policy: str, weights: dict[str, float], b_depth: int = 1) -> float:
        clock = VirtualClock()
        s = make_scheduler(
            make_engine(clock, n_slots=2),
            clock,
            policy=policy,
            tenant_weights=weights,
            max_queue_per_tenant=64,
        )
        n = {"A": 0, "B": 0}

        def top_up() -> None:
            snap = s.snapshot()
            queued = {t.tenant: t.queued for t in snap.tenants}
            for tenant, depth in (("A", 10), ("B", b_depth)):  # A demands 10x (5x) what B does
                for _ in range(depth - queued.get(tenant, 0)):
                    n[tenant] += 1
                    s.submit(make_request(f"{tenant}{n[tenant]}", tenant=tenant, max_tokens=8))

        for _ in range(600):
            top_up()
            s.step_once()
        out = {t.tenant: t.output_tokens for t in s.snapshot().tenants}
        return out["B"] / (out["A"] + out["B"])

    async def main() -> None:
        fair = await share("fair", {})
        fcfs = await share("fcfs", {})
        # B backlogged enough to use both slots: weight 2:1 gives it about two thirds.
        weighted = await share("fair", {"B": 2.0}, b_depth=2)
        assert 0.45 <= fair <= 0.55
        assert fcfs < 0.2
        assert 0.6 <= weighted <= 0.72

    run(main())


# -- the step --------------------------------------------------------------------------------


def test_step_token_budget_is_respected_and_prefill_is_chunked() -> None:
    async def main() -> None:
        clock = VirtualClock()
        engine = make_engine(clock, n_slots=4, n_batch=16)
        s = make_scheduler(engine, clock)
        handles = [s.submit(make_request(f"r{i}", prompt_len=40, max_tokens=12)) for i in range(6)]
        drive(s, lambda: all(h.done for h in handles))
        assert engine.plans and all(sum(p.values()) <= 16 for p in engine.plans)
        assert any(n > 1 for p in engine.plans for n in p.values())  # prefill chunks
        mixed = [p for p in engine.plans if 1 in p.values() and any(n > 1 for n in p.values())]
        assert mixed  # decoding went on while another prompt was read
        assert max(len(p) for p in engine.plans) <= 4
        for h in handles:
            outs = await h.collect()
            assert outs[-1].finish_reason == "length" and len(text(outs)) == 12

    run(main())


# -- preemption ------------------------------------------------------------------------------


def test_urgent_arrival_preempts_least_urgent_and_the_victim_resumes_identically() -> None:
    async def main() -> None:
        ref_clock = VirtualClock()
        ref = make_scheduler(make_engine(ref_clock, n_slots=1), ref_clock)
        ref_h = ref.submit(make_request("low", urgency=2, max_tokens=40))
        drive(ref, lambda: ref_h.done)
        expected = text(await ref_h.collect())

        clock, rec = VirtualClock(), Recorder()
        engine = make_engine(clock, n_slots=2)
        s = make_scheduler(engine, clock, policy="priority", recorder=rec)
        low = s.submit(make_request("low", urgency=2, max_tokens=40))
        mid = s.submit(make_request("mid", urgency=5, max_tokens=40))
        for _ in range(6):
            s.step_once()
        high = s.submit(make_request("high", urgency=8, max_tokens=10))
        s.step_once()
        assert rec.ids("preempt") == ["low"]
        assert {q.seq_id for q in engine.sequences()} == {"mid", "high"}
        drive(s, lambda: low.done and mid.done and high.done)
        assert rec.ids("restore") == ["low"]
        assert rec.ids("finish").index("high") < rec.ids("finish").index("low")
        assert text(await low.collect()) == expected
        assert s.snapshot().preemptions == 1

    run(main())


def test_no_preemption_for_equal_urgency_or_under_fcfs() -> None:
    async def main() -> None:
        for policy, urgency in (("priority", 5), ("fcfs", 9)):
            clock, rec = VirtualClock(), Recorder()
            s = make_scheduler(make_engine(clock, n_slots=1), clock, policy=policy, recorder=rec)
            first = s.submit(make_request("first", urgency=5, max_tokens=20))
            s.step_once()
            second = s.submit(make_request("second", urgency=urgency, max_tokens=5))
            pair = (first, second)
            drive(s, lambda pair=pair: all(h.done for h in pair))  # type: ignore[misc]
            assert rec.ids("preempt") == [] and rec.ids("finish") == ["first", "second"]

    run(main())


def test_engine_initiated_preemption_is_requeued_and_restored() -> None:
    async def main() -> None:
        clock, rec = VirtualClock(), Recorder()
        engine = make_engine(clock, n_slots=3, n_ctx=64)
        s = make_scheduler(engine, clock, recorder=rec)
        handles = [s.submit(make_request(f"r{i}", prompt_len=10, max_tokens=30)) for i in range(3)]
        drive(s, lambda: all(h.done for h in handles))
        assert s.snapshot().preemptions >= 1 and rec.ids("restore")
        for h in handles:
            outs = await h.collect()
            assert outs[-1].finish_reason == "length" and len(text(outs)) == 30

    run(main())


# -- admission -------------------------------------------------------------------------------


def test_admission_429_for_a_tenant_over_its_share_and_503_when_full() -> None:
    async def main() -> None:
        clock = VirtualClock()
        s = make_scheduler(make_engine(clock, n_slots=1), clock, max_queue=3, max_queue_per_tenant=2)
        s.submit(make_request("a1", tenant="A"))
        s.submit(make_request("a2", tenant="A"))
        with pytest.raises(RateLimited) as limited:
            s.submit(make_request("a3", tenant="A"))
        assert limited.value.retry_after >= 1.0
        s.submit(make_request("b1", tenant="B"))
        with pytest.raises(Overloaded) as full:
            s.submit(make_request("c1", tenant="C"))
        assert full.value.retry_after >= 1.0
        assert s.snapshot().rejected == 2 and s.snapshot().queued == 3
        s.step_once()  # one admitted: room again
        s.submit(make_request("c1", tenant="C"))

    run(main())


def test_submit_refuses_impossible_and_duplicate_requests() -> None:
    async def main() -> None:
        clock = VirtualClock()
        s = make_scheduler(make_engine(clock, n_ctx=64), clock)
        with pytest.raises(InvalidRequest):
            s.submit(make_request("big", prompt_len=64))
        s.submit(make_request("x"))
        with pytest.raises(Conflict):
            s.submit(make_request("x"))

    run(main())


# -- deadlines and cancellation --------------------------------------------------------------


def test_deadline_passing_in_the_queue_raises_and_while_running_ends_with_timeout() -> None:
    async def main() -> None:
        clock, rec = VirtualClock(), Recorder()
        engine = make_engine(clock, n_slots=1)
        s = make_scheduler(engine, clock, recorder=rec)
        t0 = clock()
        running = s.submit(make_request("running", max_tokens=1000, deadline=t0 + 0.2))
        queued = s.submit(make_request("queued", max_tokens=5, deadline=t0 + 0.05))
        drive(s, lambda: queued.done)
        with pytest.raises(DeadlineExceeded):
            await queued.collect()
        drive(s, lambda: running.done)
        outs = await running.collect()
        assert outs[-1].finish_reason == "timeout" and 0 < len(text(outs)) < 1000
        assert engine.sequences() == [] and s.snapshot().timeouts == 2
        assert clock() - (t0 + 0.2) < 0.01  # freed at the first step after the deadline

    run(main())


def test_cancel_frees_the_slot_within_one_step() -> None:
    async def main() -> None:
        clock = VirtualClock()
        engine = make_engine(clock, n_slots=1)
        s = make_scheduler(engine, clock)
        h = s.submit(make_request("gone", max_tokens=1000))
        waiting = s.submit(make_request("next", max_tokens=3))
        for _ in range(3):
            s.step_once()
        await h.cancel()
        s.step_once()
        assert "gone" not in engine.plans[-1] and [q.seq_id for q in engine.sequences()] == ["next"]
        outs = await h.collect()
        assert outs[-1].finish_reason == "abort"
        drive(s, lambda: waiting.done)
        assert s.snapshot().cancelled == 1

    run(main())


def test_leaving_the_stream_early_aborts_the_request() -> None:
    async def main() -> None:
        clock = VirtualClock()
        # The step thread runs free on a virtual clock: give it KV room for every token it can
        # make before the event loop closes the stream, so the only way out is the cancellation.
        engine = make_engine(clock, n_slots=2, n_ctx=10**8)
        s = make_scheduler(engine, clock)
        s.start()
        try:
            h = s.submit(make_request("reader", max_tokens=10**7))
            got = 0
            async for _ in h:
                got += 1
                if got == 3:
                    break
            await wait_for(lambda: s.snapshot().running == 0 and s.snapshot().cancelled == 1)
        finally:
            await s.stop(drain_timeout=1.0)

    run(main())


# -- engine failures -------------------------------------------------------------------------


def test_engine_death_fails_every_in_flight_request() -> None:
    async def main() -> None:
        clock = VirtualClock()
        engine = make_engine(clock, n_slots=2, die_after_steps=5)
        s = make_scheduler(engine, clock)
        s.start()
        try:
            handles = [s.submit(make_request(f"r{i}", max_tokens=1000)) for i in range(3)]
            for h in handles:
                with pytest.raises(EngineDeadError):
                    await asyncio.wait_for(h.collect(), timeout=5)
            assert s.snapshot().failed == 3 and s.snapshot().running == 0
        finally:
            await s.stop(drain_timeout=0)

    run(main())


def test_a_failed_sequence_raises_and_the_others_go_on() -> None:
    async def main() -> None:
        clock = VirtualClock()
        engine = make_engine(clock, n_slots=2)
        s = make_scheduler(engine, clock)
        bad = s.submit(make_request("bad", max_tokens=50))
        good = s.submit(make_request("good", max_tokens=50))
        s.step_once()
        engine.fail_sequence("bad", "cuda on fire")
        drive(s, lambda: bad.done and good.done)
        with pytest.raises(EngineGenerateError, match="cuda on fire"):
            await bad.collect()
        assert (await good.collect())[-1].finish_reason == "length"

    run(main())


# -- visibility ------------------------------------------------------------------------------


def test_queue_position_and_estimated_start_are_live() -> None:
    async def main() -> None:
        clock = VirtualClock()
        s = ModelScheduler(make_engine(clock, n_slots=1), clock=clock, default_service_s=2.0)
        hs = [s.submit(make_request(f"r{i}", max_tokens=5)) for i in range(3)]
        assert [h.queue_position for h in hs] == [0, 1, 2]
        assert [h.estimated_start for h in hs] == pytest.approx([0.0, 2.0, 4.0])
        s.step_once()
        assert hs[0].queue_position is None and hs[0].estimated_start == 0.0
        assert [h.queue_position for h in hs[1:]] == [0, 1]
        assert 0 < hs[1].estimated_start < 2.0  # the running one has been served a little already
        snap = s.snapshot()
        assert [(r.request_id, r.phase, r.position) for r in snap.requests] == [
            ("r0", "running", None),
            ("r1", "queued", 0),
            ("r2", "queued", 1),
        ]
        drive(s, lambda: all(h.done for h in hs))
        est = s.snapshot().queue_model
        assert est.services == 3 and est.waits == 3 and est.service_mean_s is not None
        assert hs[2].queue_position is None and hs[2].estimated_start is None

    run(main())


def test_stop_drains_then_refuses_and_aborts_what_is_left() -> None:
    async def main() -> None:
        clock = VirtualClock()
        s = make_scheduler(make_engine(clock, n_slots=2), clock)
        s.start()
        short = [s.submit(make_request(f"s{i}", max_tokens=5)) for i in range(3)]
        await s.stop(drain_timeout=5.0)
        for h in short:
            assert (await h.collect())[-1].finish_reason == "length"
        with pytest.raises(Overloaded):
            s.submit(make_request("late"))

        clock2 = VirtualClock()
        # KV room for far more tokens than the step thread can make before the drain ends.
        s2 = make_scheduler(make_engine(clock2, n_slots=1, n_ctx=10**8), clock2)
        endless = s2.submit(make_request("endless", max_tokens=10**9))
        queued = s2.submit(make_request("queued", max_tokens=5))
        s2.start()
        await wait_for(lambda: endless.queue_position is None)
        await s2.stop(drain_timeout=0.05)
        assert (await endless.collect())[-1].finish_reason == "abort"
        with pytest.raises(Overloaded):
            await queued.collect()

    run(main())


def test_streaming_through_the_thread_matches_the_engine() -> None:
    async def main() -> None:
        clock = VirtualClock()
        engine = make_engine(clock, n_slots=4)
        s = make_scheduler(engine, clock)
        s.start()
        try:
            handles = [s.submit(make_request(f"r{i}", max_tokens=20)) for i in range(8)]
            results = await asyncio.wait_for(asyncio.gather(*(h.collect() for h in handles)), timeout=10)
            for outs in results:
                assert len(text(outs)) == 20 and outs[-1].completion_tokens == 20
            snap = s.snapshot()
            assert snap.completed == 8 and snap.running == 0 and snap.queued == 0
        finally:
            await s.stop(drain_timeout=1.0)

    run(main())


def test_requests_with_token_ids_outside_the_vocabulary_fail_alone() -> None:
    async def main() -> None:
        clock = VirtualClock()
        s = make_scheduler(make_engine(clock), clock)
        bad = s.submit(make_request("bad", prompt=(1, 99999)))
        ok = s.submit(make_request("ok"))
        drive(s, lambda: bad.done and ok.done)
        with pytest.raises(InvalidRequest):
            await bad.collect()
        assert (await ok.collect())[-1].finish_reason == "length"

    _ = SequenceSpec, SamplingParams
    run(main())


def test_priority_pauses_much_less_urgent_work_while_urgent_work_runs() -> None:
    async def main() -> None:
        ref_clock = VirtualClock()
        ref = make_scheduler(make_engine(ref_clock, n_slots=1), ref_clock)
        ref_h = ref.submit(make_request("flex", urgency=2, max_tokens=30))
        drive(ref, lambda: ref_h.done)
        expected = text(await ref_h.collect())

        clock, rec = VirtualClock(), Recorder()
        engine = make_engine(clock, n_slots=2)
        s = make_scheduler(engine, clock, policy="priority", recorder=rec)
        flex = s.submit(make_request("flex", urgency=2, max_tokens=30))
        for _ in range(5):
            s.step_once()
        urgent = s.submit(make_request("urgent", urgency=8, max_tokens=10))
        drive(s, lambda: urgent.done)
        assert rec.ids("preempt") == []  # a free slot: nothing evicted...
        urgent_steps = [p for p in engine.plans if "urgent" in p]
        assert urgent_steps and all("flex" not in p for p in urgent_steps)  # ...but flex sat out
        drive(s, lambda: flex.done)
        assert text(await flex.collect()) == expected

    run(main())


def test_handle_as_context_manager_and_iterating_twice() -> None:
    async def main() -> None:
        clock = VirtualClock()
        engine = make_engine(clock, n_slots=1)
        s = make_scheduler(engine, clock)
        async with s.submit(make_request("left", max_tokens=1000)) as left:
            s.step_once()
        s.step_once()
        assert left.done and engine.sequences() == [] and s.snapshot().cancelled == 1
        h = s.submit(make_request("twice", max_tokens=3))
        drive(s, lambda: h.done)
        assert len(text(await h.collect())) == 3
        assert await asyncio.wait_for(h.collect(), timeout=1) == []

    run(main())


def test_snapshot_reports_tenants_and_policy_state() -> None:
    async def main() -> None:
        clock = VirtualClock()
        s = make_scheduler(make_engine(clock, n_slots=1), clock, policy="fair")
        for i in range(3):
            s.submit(make_request(f"a{i}", tenant="A", max_tokens=4))
        s.submit(make_request("b0", tenant="B", max_tokens=4))
        s.step_once()
        snap = s.snapshot()
        assert snap.policy == "fair" and snap.running == 1 and snap.queued == 3
        assert {(t.tenant, t.queued, t.running) for t in snap.tenants} == {("A", 2, 1), ("B", 1, 0)}
        assert snap.policy_state["A"] > 0
        assert next(r.request_id for r in snap.requests if r.phase == "queued") == "b0"  # B is owed service

    run(main())


def test_a_scheduler_bug_fails_requests_instead_of_hanging_them() -> None:
    class BrokenPolicy(FcfsPolicy):
        def runnable(self, running: Any, now: float) -> list[Any]:
            raise RuntimeError("policy bug")

    async def main() -> None:
        clock = VirtualClock()
        s = ModelScheduler(make_engine(clock), clock=clock, policy=BrokenPolicy())
        s.start()
        try:
            h = s.submit(make_request("victim"))
            with pytest.raises(EngineGenerateError, match="policy bug"):
                await asyncio.wait_for(h.collect(), timeout=5)
        finally:
            await s.stop(drain_timeout=0)

    run(main())
