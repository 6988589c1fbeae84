"""The default policy, ``tiered``: urgency tiers with aging, weighted fair share within a tier.
First on plain items (its order, victims and pauses), then end to end on the fake engine."""

from __future__ import annotations

import pytest

from llmos.config import SchedulerConfig, Settings
from llmos.errors import InvalidRequest
from llmos.scheduler import POLICY_NAMES, ModelScheduler, make_policy
from llmos.scheduler.policies import FairPolicy, PriorityPolicy, TieredPolicy

from .factories import Driver, Recorder, VirtualClock, make_engine, make_request, make_scheduler
from .items import Item, ids, items

FLEX, DEFAULT, PRIORITY = 2, 5, 8


# -- the policy on plain items ---------------------------------------------------------------


def test_tiered_is_the_default_and_built_from_the_config() -> None:
    assert SchedulerConfig().policy == "tiered" == POLICY_NAMES[0]
    assert Settings().freeze().scheduler.policy == "tiered"
    p = make_policy("tiered", SchedulerConfig(aging_seconds=3.0, tenant_weights={"a": 2.0}))
    assert isinstance(p, TieredPolicy) and p.aging_seconds == 3.0
    # A FairPolicy: the kernel hands it the tenants' stored weights as it does to ``fair``.
    assert isinstance(p, FairPolicy) and p.weight("a") == 2.0 and p.weight("b") == 1.0
    with pytest.raises(InvalidRequest):
        TieredPolicy(aging_seconds=0)
    with pytest.raises(InvalidRequest):
        TieredPolicy({"x": -1.0})


def test_higher_tiers_first_then_fair_share_within_a_tier() -> None:
    p = TieredPolicy(aging_seconds=1000)
    w = items(
        ("a1", "A", DEFAULT, 0),
        ("a2", "A", DEFAULT, 0),
        ("f1", "A", FLEX, 0),
        ("a3", "A", DEFAULT, 0),
        ("b1", "B", DEFAULT, 0),
        ("p1", "B", PRIORITY, 0),
    )
    for it in w:
        p.on_enqueue(it, 0, {"A", "B"} - {it.tenant})
    p.on_tokens("A", 0, 100)  # A has been served: B's default work comes before A's next one
    assert ids(p.order(w, now=0)) == ["p1", "b1", "a1", "a2", "a3", "f1"]


def test_a_tier_that_waited_long_enough_overtakes_more_urgent_ones() -> None:
    p = TieredPolicy(aging_seconds=10)
    old_flex = Item("flex", urgency=FLEX, arrival=0.0, seqno=0)
    prio_at_59 = Item("prio", urgency=PRIORITY, arrival=59.0, seqno=1)
    assert ids(p.order([old_flex, prio_at_59], now=59.5)) == ["prio", "flex"]  # 2 + 5.95 < 8 + 0.05
    prio_at_61 = Item("prio", urgency=PRIORITY, arrival=61.0, seqno=1)
    assert ids(p.order([old_flex, prio_at_61], now=61.5)) == ["flex", "prio"]  # 2 + 6.15 > 8 + 0.05
    # Ties go to the more urgent tier.
    tie = [Item("f", urgency=FLEX, arrival=0.0, seqno=0), Item("d", urgency=DEFAULT, arrival=30.0, seqno=1)]
    assert ids(p.order(tie, now=30.0)) == ["d", "f"]


def test_aging_never_reorders_the_tenants_of_one_tier() -> None:
    p = TieredPolicy(aging_seconds=1)
    # A has queued for a minute (60 aging periods); B arrived just now, with less service behind it.
    a = [Item(f"a{i}", "A", DEFAULT, arrival=0.0, seqno=i) for i in range(3)]
    b = Item("b0", "B", DEFAULT, arrival=60.0, seqno=9)
    p.counters.update({"A": 500.0, "B": 100.0})
    assert ids(p.order([*a, b], now=60.0))[0] == "b0"
    # Beside another tier the same holds: aging lifts the tier, the fair share picks in it.
    flex = Item("f0", "C", FLEX, arrival=0.0, seqno=20)
    assert ids(p.order([*a, b, flex], now=60.0)) == ["b0", "a0", "a1", "a2", "f0"]


def test_the_victim_is_least_urgent_and_most_served_and_only_for_more_urgent_work() -> None:
    p = TieredPolicy()
    p.counters.update({"x": 10.0, "y": 50.0})
    running = items(("r1", "x", DEFAULT, 0), ("r2", "y", FLEX, 0), ("r3", "x", FLEX, 1))
    victim = p.victim(Item("h", urgency=PRIORITY, seqno=9), running, now=1)
    assert victim is not None and victim.request_id == "r2"  # tenant y has had more service
    p.counters["x"] = 50.0
    victim = p.victim(Item("h", urgency=PRIORITY, seqno=9), running, now=1)
    assert victim is not None and victim.request_id == "r3"  # equal service: the newest
    # As PriorityPolicy: no preemption among equals, none by aging alone, none of aged work.
    assert p.victim(Item("same", urgency=FLEX, seqno=9), running, now=1) is None
    assert p.victim(Item("old", urgency=FLEX, arrival=-1000, seqno=9), running, now=1) is None
    aged = [Item("aged", urgency=FLEX, arrival=-100.0, seqno=0)]
    assert p.victim(Item("h", urgency=PRIORITY, arrival=1.0, seqno=9), aged, now=1) is None
    assert p.victim(Item("h", urgency=PRIORITY), [], now=1) is None


def test_pausing_follows_the_priority_policy() -> None:
    running = items(("flex", "x", FLEX, 0.0), ("default", "x", DEFAULT, 0.0), ("prio", "x", PRIORITY, 0.0))
    late = [running[0], Item("prio", urgency=PRIORITY, arrival=40.0, seqno=5)]
    aged = [Item("old", urgency=FLEX, arrival=0.0, seqno=0), Item("new", urgency=FLEX, arrival=90.0, seqno=1)]
    for now, group in ((0.0, running), (0.0, running[:2]), (40.0, late), (90.0, aged)):
        expected = PriorityPolicy(aging_seconds=10, pause_gap=4).runnable(group, now)
        assert TieredPolicy(aging_seconds=10, pause_gap=4).runnable(group, now) == expected
    assert ids(TieredPolicy().runnable(running, 0.0)) == ["default", "prio"]
    assert ids(TieredPolicy().runnable(aged, 90.0)) == ["old", "new"]  # one class never pauses itself
    assert ids(TieredPolicy(pause_gap=None).runnable(running, 0.0)) == ["flex", "default", "prio"]


# -- end to end on the fake engine -----------------------------------------------------------


def test_out_of_the_box_priority_work_goes_ahead_of_default_and_flex() -> None:
    clock, rec = VirtualClock(), Recorder()
    engine = make_engine(clock, n_slots=1)
    s = ModelScheduler(engine, model="fake:test", clock=clock, on_event=rec)  # no config: defaults
    assert s.policy.name == "tiered"
    d = Driver(s)
    d.add(make_request("first", urgency=FLEX, max_tokens=30))
    d.step()
    rest = [
        d.add(make_request(rid, urgency=u, max_tokens=4))
        for rid, u in (("flex", FLEX), ("default", DEFAULT), ("prio", PRIORITY))
    ]
    d.drive(lambda: all(d.done(r) for r in ["first", *rest]))
    # The running flex request steps aside for the priority one, and resumes after default work.
    assert rec.ids("preempt") == ["first"]
    assert rec.ids("finish") == ["prio", "default", "first", "flex"]


def test_aging_lets_flex_through_under_sustained_priority_load() -> None:
    clock, rec = VirtualClock(), Recorder()
    s = make_scheduler(
        make_engine(clock, n_slots=1), clock, policy="tiered", recorder=rec, aging_seconds=0.05
    )
    d = Driver(s)
    prios: list[str] = []

    def prio() -> None:
        prios.append(d.add(make_request(f"p{len(prios)}", urgency=PRIORITY, max_tokens=4)))

    prio()
    prio()
    flex = d.add(make_request("flex", urgency=FLEX, max_tokens=4))
    for _ in range(5000):
        if d.done(flex):
            break
        while s.snapshot().queued < 3:  # priority work always waiting
            prio()
        d.step()
    assert d.done(flex)
    admitted = rec.ids("admit")
    assert admitted.index("flex") > 3  # priority work went first for a while...
    assert any(p not in admitted for p in prios)  # ...but not forever


def _default_tier_share(weights: dict[str, float], b_depth: int) -> float:
    """B's share of the tokens of the default tier while A keeps 10 requests queued there (B:
    ``b_depth``) and a third tenant's priority and flex work comes and goes beside them."""
    clock = VirtualClock()
    s = make_scheduler(
        make_engine(clock, n_slots=2), clock, policy="tiered", tenant_weights=weights, max_queue_per_tenant=64
    )
    d = Driver(s)
    n = {"A": 0, "B": 0, "C": 0}
    for step in range(600):
        queued = {t.tenant: t.queued for t in s.snapshot().tenants}
        for tenant, depth in (("A", 10), ("B", b_depth)):
            for _ in range(depth - queued.get(tenant, 0)):
                n[tenant] += 1
                d.add(make_request(f"{tenant}{n[tenant]}", tenant=tenant, max_tokens=8))
        if step % 50 == 0:
            for urgency in (PRIORITY, FLEX):
                n["C"] += 1
                d.add(make_request(f"C{n['C']}", tenant="C", urgency=urgency, max_tokens=8))
        d.step()
    out = {t.tenant: t.output_tokens for t in s.snapshot().tenants}
    assert out["C"] > 0
    return out["B"] / (out["A"] + out["B"])


def test_two_tenants_in_one_tier_share_it_evenly_and_by_weight() -> None:
    assert 0.45 <= _default_tier_share({}, b_depth=1) <= 0.55
    # B backlogged enough to use both slots: weight 2:1 gives it about two thirds.
    assert 0.6 <= _default_tier_share({"B": 2.0}, b_depth=2) <= 0.72


def test_a_preempted_request_resumes_identically_and_equals_never_preempt() -> None:
    ref_clock = VirtualClock()
    ref = Driver(make_scheduler(make_engine(ref_clock, n_slots=1), ref_clock, policy="tiered"))
    ref.add(make_request("low", urgency=FLEX, max_tokens=40))
    ref.drive(lambda: ref.done("low"))
    expected = ref.text("low")

    clock, rec = VirtualClock(), Recorder()
    engine = make_engine(clock, n_slots=2)
    d = Driver(make_scheduler(engine, clock, policy="tiered", recorder=rec))
    d.add(make_request("low", urgency=FLEX, max_tokens=40))
    d.add(make_request("mid", urgency=DEFAULT, max_tokens=40))
    for _ in range(6):
        d.step()
    d.add(make_request("same", tenant="other", urgency=FLEX, max_tokens=5))
    d.step()
    assert rec.ids("preempt") == []  # equal urgency waits for a slot, whoever the tenant
    d.add(make_request("high", urgency=PRIORITY, max_tokens=10))
    d.step()
    assert rec.ids("preempt") == ["low"]
    # While "high" runs beside "mid" (a gap of 3 < pause_gap 4), both take part in every step.
    assert set(engine.plans[-1]) == {"mid", "high"}
    d.drive(lambda: all(d.done(r) for r in ("low", "mid", "same", "high")))
    assert rec.ids("restore") == ["low"]
    assert d.text("low") == expected


def test_flex_sits_out_the_steps_of_priority_work_and_keeps_its_slot() -> None:
    clock, rec = VirtualClock(), Recorder()
    engine = make_engine(clock, n_slots=2)
    d = Driver(make_scheduler(engine, clock, policy="tiered", recorder=rec))
    d.add(make_request("flex", urgency=FLEX, max_tokens=40))
    d.step()
    d.add(make_request("prio", urgency=PRIORITY, max_tokens=10))
    d.drive(lambda: d.done("prio"))
    # A free slot: no preemption, but while prio ran, flex was left out of the steps.
    assert rec.ids("preempt") == []
    with_prio = [plan for plan in engine.plans if "prio" in plan]
    assert with_prio and all("flex" not in plan for plan in with_prio)
    d.drive(lambda: d.done("flex"))
    assert d.finish("flex") == "length"
