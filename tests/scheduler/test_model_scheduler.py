"""The model scheduler on the fake engine, driven step by step: policies end to end, budget,
preemption, deadlines, cancellation, engine death, queue positions, policy and weight changes.
Virtual time: the fake engine spends an injected clock, so nothing here sleeps to measure time.
(Admission bounds, streams and drain live in the core's client: ``tests/core``.)"""

from __future__ import annotations

from typing import Any

import pytest

from llmos.errors import (
    Conflict,
    DeadlineExceeded,
    EngineDeadError,
    EngineGenerateError,
    InvalidRequest,
    Overloaded,
)
from llmos.scheduler import ModelScheduler
from llmos.scheduler.policies import FcfsPolicy, make_policy

from .factories import Driver, Recorder, VirtualClock, make_engine, make_request, make_scheduler

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
    clock, rec = VirtualClock(), Recorder()
    d = Driver(
        make_scheduler(make_engine(clock, n_slots=1), clock, policy=policy, recorder=rec, aging_seconds=1e6)
    )
    specs = [("a1", "A", 3), ("a2", "A", 6), ("a3", "A", 1), ("b1", "B", 9), ("c1", "C", 3)]
    ids = [d.add(make_request(rid, tenant=t, urgency=u)) for rid, t, u in specs]
    d.drive(lambda: all(d.done(r) for r in ids))
    assert rec.ids("admit") == expected
    assert rec.ids("finish") == expected  # one slot: each runs to the end before the next


def test_priority_aging_low_urgency_never_starves() -> None:
    clock, rec = VirtualClock(), Recorder()
    s = make_scheduler(
        make_engine(clock, n_slots=1), clock, policy="priority", recorder=rec, aging_seconds=0.05
    )
    d = Driver(s)
    highs: list[str] = []

    def high() -> None:
        highs.append(d.add(make_request(f"h{len(highs) + 1}", urgency=8, max_tokens=4)))

    high()
    high()
    low = d.add(make_request("low", urgency=2, max_tokens=4))
    for _ in range(5000):
        if d.done(low):
            break
        while s.snapshot().queued < 3:  # a steady stream: high-urgency work always waiting
            high()
        d.step()
    assert d.done(low)
    admitted = rec.ids("admit")
    assert admitted.index("low") > 3  # high work went first for a while...
    assert any(h not in admitted for h in highs)  # ...but not forever


def _share(policy: str, weights: dict[str, float], b_depth: int = 1) -> float:
    clock = VirtualClock()
    s = make_scheduler(
        make_engine(clock, n_slots=2), clock, policy=policy, tenant_weights=weights, max_queue_per_tenant=64
    )
    d = Driver(s)
    n = {"A": 0, "B": 0}
    for _ in range(600):
        queued = {t.tenant: t.queued for t in s.snapshot().tenants}
        for tenant, depth in (("A", 10), ("B", b_depth)):  # A demands 10x (5x) what B does
            for _ in range(depth - queued.get(tenant, 0)):
                n[tenant] += 1
                d.add(make_request(f"{tenant}{n[tenant]}", tenant=tenant, max_tokens=8))
        d.step()
    out = {t.tenant: t.output_tokens for t in s.snapshot().tenants}
    return out["B"] / (out["A"] + out["B"])


def test_fair_share_gives_the_light_tenant_about_half_the_tokens() -> None:
    assert 0.45 <= _share("fair", {}) <= 0.55
    assert _share("fcfs", {}) < 0.2
    # B backlogged enough to use both slots: weight 2:1 gives it about two thirds.
    assert 0.6 <= _share("fair", {"B": 2.0}, b_depth=2) <= 0.72


def test_weights_and_policy_change_between_steps() -> None:
    clock = VirtualClock()
    s = make_scheduler(make_engine(clock, n_slots=1), clock, policy="fair")
    s.set_tenant_weights({"B": 3.0})
    policy: Any = s.policy
    assert policy.weight("B") == 3.0 and s.snapshot().tenant_weights == {"B": 3.0}
    d = Driver(s)
    first = d.add(make_request("a1", tenant="A", urgency=2))
    d.step()
    d.add(make_request("a2", tenant="A", urgency=2))
    urgent = d.add(make_request("b1", tenant="B", urgency=9))
    s.set_policy(make_policy("priority"))
    assert s.snapshot().policy == "priority"
    assert s.position_of(urgent)[0] == 0  # the queue was handed over and reordered
    d.drive(lambda: d.done(first) and d.done(urgent))
    assert d.finish(urgent) == "length"


# -- the step --------------------------------------------------------------------------------


def test_step_token_budget_is_respected_and_prefill_is_chunked() -> None:
    clock = VirtualClock()
    engine = make_engine(clock, n_slots=4, n_batch=16)
    d = Driver(make_scheduler(engine, clock))
    ids = [d.add(make_request(f"r{i}", prompt_len=40, max_tokens=12)) for i in range(6)]
    d.drive(lambda: all(d.done(r) for r in ids))
    assert engine.plans and all(sum(p.values()) <= 16 for p in engine.plans)
    assert any(n > 1 for p in engine.plans for n in p.values())  # prefill chunks
    mixed = [p for p in engine.plans if 1 in p.values() and any(n > 1 for n in p.values())]
    assert mixed  # decoding went on while another prompt was read
    assert max(len(p) for p in engine.plans) <= 4
    for r in ids:
        assert d.finish(r) == "length" and len(d.text(r)) == 12


def test_an_idle_step_reports_no_progress() -> None:
    clock = VirtualClock()
    s = make_scheduler(make_engine(clock, n_slots=1, n_ctx=64), clock)
    assert s.step() == [] and not s.progressed and not s.has_work
    s.add(make_request("r", prompt_len=8, max_tokens=2))
    s.step()
    assert s.progressed and s.has_work


# -- preemption ------------------------------------------------------------------------------


def test_urgent_arrival_preempts_least_urgent_and_the_victim_resumes_identically() -> None:
    ref_clock = VirtualClock()
    ref = Driver(make_scheduler(make_engine(ref_clock, n_slots=1), ref_clock))
    ref.add(make_request("low", urgency=2, max_tokens=40))
    ref.drive(lambda: ref.done("low"))
    expected = ref.text("low")

    clock, rec = VirtualClock(), Recorder()
    engine = make_engine(clock, n_slots=2)
    s = make_scheduler(engine, clock, policy="priority", recorder=rec)
    d = Driver(s)
    d.add(make_request("low", urgency=2, max_tokens=40))
    d.add(make_request("mid", urgency=5, max_tokens=40))
    for _ in range(6):
        d.step()
    d.add(make_request("high", urgency=8, max_tokens=10))
    d.step()
    assert rec.ids("preempt") == ["low"]
    assert {q.seq_id for q in engine.sequences()} == {"mid", "high"}
    d.drive(lambda: all(d.done(r) for r in ("low", "mid", "high")))
    assert rec.ids("restore") == ["low"]
    assert rec.ids("finish").index("high") < rec.ids("finish").index("low")
    assert d.text("low") == expected
    assert s.snapshot().preemptions == 1


def test_no_preemption_for_equal_urgency_or_under_fcfs() -> None:
    for policy, urgency in (("priority", 5), ("fcfs", 9)):
        clock, rec = VirtualClock(), Recorder()
        d = Driver(make_scheduler(make_engine(clock, n_slots=1), clock, policy=policy, recorder=rec))
        d.add(make_request("first", urgency=5, max_tokens=20))
        d.step()
        d.add(make_request("second", urgency=urgency, max_tokens=5))
        d.drive(lambda d=d: d.done("first") and d.done("second"))  # type: ignore[misc]
        assert rec.ids("preempt") == [] and rec.ids("finish") == ["first", "second"]


def test_engine_initiated_preemption_is_requeued_and_restored() -> None:
    clock, rec = VirtualClock(), Recorder()
    engine = make_engine(clock, n_slots=3, n_ctx=64)
    s = make_scheduler(engine, clock, recorder=rec)
    d = Driver(s)
    ids = [d.add(make_request(f"r{i}", prompt_len=10, max_tokens=30)) for i in range(3)]
    d.drive(lambda: all(d.done(r) for r in ids))
    assert s.snapshot().preemptions >= 1 and rec.ids("restore")
    for r in ids:
        assert d.finish(r) == "length" and len(d.text(r)) == 30


# -- requests it refuses ---------------------------------------------------------------------


def test_add_refuses_impossible_and_duplicate_requests_and_late_ones() -> None:
    clock = VirtualClock()
    s = make_scheduler(make_engine(clock, n_ctx=64), clock)
    with pytest.raises(InvalidRequest):
        s.add(make_request("big", prompt_len=64))
    with pytest.raises(InvalidRequest):
        s.add(make_request("empty", prompt=()))
    s.add(make_request("x"))
    with pytest.raises(Conflict):
        s.add(make_request("x"))
    s.stop_accepting()
    with pytest.raises(Overloaded):
        s.add(make_request("late"))
    assert s.in_flight == 1


def test_requests_with_token_ids_outside_the_vocabulary_fail_alone() -> None:
    clock = VirtualClock()
    d = Driver(make_scheduler(make_engine(clock), clock))
    d.add(make_request("bad", prompt=(1, 99999)))
    d.add(make_request("ok"))
    d.drive(lambda: d.done("bad") and d.done("ok"))
    with pytest.raises(InvalidRequest):
        d.outputs("bad")
    assert d.finish("ok") == "length"


# -- deadlines and cancellation --------------------------------------------------------------


def test_deadline_passing_in_the_queue_raises_and_while_running_ends_with_timeout() -> None:
    clock, rec = VirtualClock(), Recorder()
    engine = make_engine(clock, n_slots=1)
    s = make_scheduler(engine, clock, recorder=rec)
    d = Driver(s)
    t0 = clock()
    d.add(make_request("running", max_tokens=1000, deadline=t0 + 0.2))
    d.add(make_request("queued", max_tokens=5, deadline=t0 + 0.05))
    assert s.next_deadline() == pytest.approx(t0 + 0.05)
    d.drive(lambda: d.done("queued"))
    with pytest.raises(DeadlineExceeded):
        d.outputs("queued")
    d.drive(lambda: d.done("running"))
    assert d.finish("running") == "timeout" and 0 < len(d.text("running")) < 1000
    assert engine.sequences() == [] and s.snapshot().timeouts == 2
    assert clock() - (t0 + 0.2) < 0.01  # freed at the first step after the deadline


def test_abort_frees_the_slot_within_one_step() -> None:
    clock = VirtualClock()
    engine = make_engine(clock, n_slots=1)
    s = make_scheduler(engine, clock)
    d = Driver(s)
    d.add(make_request("gone", max_tokens=1000))
    d.add(make_request("next", max_tokens=3))
    for _ in range(3):
        d.step()
    s.abort("gone")
    s.abort("unknown")  # ignored
    d.step()
    assert "gone" not in engine.plans[-1] and [q.seq_id for q in engine.sequences()] == ["next"]
    assert d.finish("gone") == "abort"
    d.drive(lambda: d.done("next"))
    assert s.snapshot().cancelled == 1


def test_abort_all_ends_running_work_and_fails_queued_work() -> None:
    clock = VirtualClock()
    s = make_scheduler(make_engine(clock, n_slots=1), clock)
    d = Driver(s)
    d.add(make_request("endless", max_tokens=10**6))
    d.add(make_request("queued", max_tokens=5))
    d.step()
    s.abort_all()
    d.step()
    assert d.finish("endless") == "abort"
    with pytest.raises(Overloaded):
        d.outputs("queued")
    assert not s.has_work


# -- engine failures -------------------------------------------------------------------------


def test_engine_death_fails_every_request_and_refuses_new_ones() -> None:
    clock = VirtualClock()
    s = make_scheduler(make_engine(clock, n_slots=2, die_after_steps=5), clock)
    d = Driver(s)
    ids = [d.add(make_request(f"r{i}", max_tokens=1000)) for i in range(3)]  # two run, one waits
    d.drive(lambda: all(d.done(r) for r in ids))
    for r in ids:
        with pytest.raises(EngineDeadError):
            d.outputs(r)
    assert s.dead is not None and s.snapshot().failed == 3 and not s.has_work
    with pytest.raises(EngineDeadError):
        s.add(make_request("after"))


def test_a_failed_sequence_raises_and_the_others_go_on() -> None:
    clock = VirtualClock()
    engine = make_engine(clock, n_slots=2)
    d = Driver(make_scheduler(engine, clock))
    d.add(make_request("bad", max_tokens=50))
    d.add(make_request("good", max_tokens=50))
    d.step()
    engine.fail_sequence("bad", "cuda on fire")
    d.drive(lambda: d.done("bad") and d.done("good"))
    with pytest.raises(EngineGenerateError, match="cuda on fire"):
        d.outputs("bad")
    assert d.finish("good") == "length"


def test_a_scheduler_bug_fails_requests_instead_of_hanging_them() -> None:
    class BrokenPolicy(FcfsPolicy):
        def runnable(self, running: Any, now: float) -> list[Any]:
            raise RuntimeError("policy bug")

    clock = VirtualClock()
    d = Driver(ModelScheduler(make_engine(clock), clock=clock, policy=BrokenPolicy()))
    d.add(make_request("victim"))
    d.step()
    with pytest.raises(EngineGenerateError, match="policy bug"):
        d.outputs("victim")


# -- visibility ------------------------------------------------------------------------------


def test_queue_position_and_estimated_start_are_live() -> None:
    clock = VirtualClock()
    s = ModelScheduler(make_engine(clock, n_slots=1), clock=clock, default_service_s=2.0)
    d = Driver(s)
    ids = [d.add(make_request(f"r{i}", max_tokens=5)) for i in range(3)]
    assert [s.position_of(r) for r in ids] == [(0, 0.0), (1, pytest.approx(2.0)), (2, pytest.approx(4.0))]
    assert [(p.request_id, p.position) for p in s.positions()] == [("r0", 0), ("r1", 1), ("r2", 2)]
    d.step()
    assert s.position_of("r0") == (None, 0.0)
    assert [s.position_of(r)[0] for r in ids[1:]] == [0, 1]
    est = s.position_of("r1")[1]
    assert est is not None and 0 < est < 2.0  # the running one has been served a little already
    snap = s.snapshot()
    assert [(r.request_id, r.phase, r.position) for r in snap.requests] == [
        ("r0", "running", None),
        ("r1", "queued", 0),
        ("r2", "queued", 1),
    ]
    counts = s.counts()
    assert (counts.running, counts.queued) == (1, 2) and counts.tenants[0].queued == 2
    d.drive(lambda: all(d.done(r) for r in ids))
    q = s.snapshot().queue_model
    assert q.services == 3 and q.waits == 3 and q.service_mean_s is not None
    assert s.position_of("r2") == (None, None)
    assert s.counts().expected_service_s == pytest.approx(q.service_mean_s)


def test_priority_pauses_much_less_urgent_work_while_urgent_work_runs() -> None:
    ref_clock = VirtualClock()
    ref = Driver(make_scheduler(make_engine(ref_clock, n_slots=1), ref_clock))
    ref.add(make_request("flex", urgency=2, max_tokens=30))
    ref.drive(lambda: ref.done("flex"))
    expected = ref.text("flex")

    clock, rec = VirtualClock(), Recorder()
    engine = make_engine(clock, n_slots=2)
    d = Driver(make_scheduler(engine, clock, policy="priority", recorder=rec))
    d.add(make_request("flex", urgency=2, max_tokens=30))
    for _ in range(5):
        d.step()
    d.add(make_request("urgent", urgency=8, max_tokens=10))
    d.drive(lambda: d.done("urgent"))
    assert rec.ids("preempt") == []  # a free slot: nothing evicted...
    urgent_steps = [p for p in engine.plans if "urgent" in p]
    assert urgent_steps and all("flex" not in p for p in urgent_steps)  # ...but flex sat out
    d.drive(lambda: d.done("flex"))
    assert d.text("flex") == expected


def test_snapshot_reports_tenants_and_policy_state() -> None:
    clock = VirtualClock()
    s = make_scheduler(make_engine(clock, n_slots=1), clock, policy="fair")
    for i in range(3):
        s.add(make_request(f"a{i}", tenant="A", max_tokens=4))
    s.add(make_request("b0", tenant="B", max_tokens=4))
    s.step()
    snap = s.snapshot()
    assert snap.policy == "fair" and snap.running == 1 and snap.queued == 3
    assert {(t.tenant, t.queued, t.running) for t in snap.tenants} == {("A", 2, 1), ("B", 1, 0)}
    assert snap.policy_state["A"] > 0
    assert next(r.request_id for r in snap.requests if r.phase == "queued") == "b0"  # B is owed service
