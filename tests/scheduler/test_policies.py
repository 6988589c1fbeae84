"""Each policy's order, on plain items (no engine)."""

from __future__ import annotations

import pytest

from llmos.config import SchedulerConfig
from llmos.errors import InvalidRequest
from llmos.scheduler import make_policy, urgency_for_service_tier
from llmos.scheduler.policies import FairPolicy, FcfsPolicy, PriorityPolicy, RoundRobinPolicy

from .items import Item, ids, items


def test_service_tier_mapping() -> None:
    assert urgency_for_service_tier("priority") == 8
    assert urgency_for_service_tier("default") == 5
    assert urgency_for_service_tier(None) == 5
    assert urgency_for_service_tier("flex") == 2
    with pytest.raises(InvalidRequest):
        urgency_for_service_tier("platinum")


def test_factory_builds_each_policy_by_name() -> None:
    cfg = SchedulerConfig(aging_seconds=3.0, tenant_weights={"a": 2.0})
    assert isinstance(make_policy("fcfs", cfg), FcfsPolicy)
    p = make_policy("priority", cfg)
    assert isinstance(p, PriorityPolicy) and p.aging_seconds == 3.0
    assert isinstance(make_policy("round_robin", cfg), RoundRobinPolicy)
    f = make_policy("fair", cfg)
    assert isinstance(f, FairPolicy) and f.weight("a") == 2.0 and f.weight("b") == 1.0
    with pytest.raises(InvalidRequest):
        make_policy("lottery", cfg)


def test_fcfs_is_submission_order_whatever_the_urgency() -> None:
    w = items(("a", "x", 1, 0), ("b", "y", 9, 1), ("c", "x", 5, 2))
    assert ids(FcfsPolicy().order(list(reversed(w)), now=10)) == ["a", "b", "c"]
    assert FcfsPolicy().victim(w[1], w, now=10) is None


def test_priority_orders_by_urgency_then_fifo() -> None:
    w = items(("a", "x", 2, 0), ("b", "x", 8, 0), ("c", "x", 8, 0), ("d", "x", 5, 0))
    assert ids(PriorityPolicy(aging_seconds=1000).order(w, now=0)) == ["b", "c", "d", "a"]


def test_priority_aging_lifts_old_low_urgency_work() -> None:
    p = PriorityPolicy(aging_seconds=10)
    old_low = Item("low", urgency=2, arrival=0.0, seqno=0)
    high_at_59 = Item("high", urgency=8, arrival=59.0, seqno=1)
    assert ids(p.order([old_low, high_at_59], now=59.5)) == ["high", "low"]  # 2 + 5.95 < 8 + 0.05
    # Six aging periods make up the urgency gap: any high request arriving after t = 60 ranks below it.
    high_at_61 = Item("high", urgency=8, arrival=61.0, seqno=1)
    assert ids(p.order([old_low, high_at_61], now=61.5)) == ["low", "high"]  # 2 + 6.15 > 8 + 0.05


def test_priority_victim_is_least_urgent_and_only_for_more_urgent_work() -> None:
    p = PriorityPolicy()
    running = items(("r1", "x", 5, 0), ("r2", "x", 2, 0), ("r3", "x", 2, 1))
    high = Item("h", urgency=8, seqno=9)
    victim = p.victim(high, running, now=1)
    assert victim is not None and victim.request_id == "r3"  # least urgent, newest among equals
    assert p.victim(Item("same", urgency=2, seqno=9), running, now=1) is None
    # Aging never preempts: an old low request ranks high in the queue but evicts nobody.
    assert p.victim(Item("old", urgency=2, arrival=-1000, seqno=9), running, now=1) is None
    # A running request that has aged past a newcomer is not evicted by it (no starvation by preemption).
    aged = [Item("aged", urgency=2, arrival=-100.0, seqno=0)]
    assert p.victim(Item("h", urgency=8, arrival=1.0, seqno=9), aged, now=1) is None


def test_round_robin_alternates_tenants() -> None:
    p = RoundRobinPolicy()
    w = items(("a1", "A", 5, 0), ("a2", "A", 5, 0), ("a3", "A", 5, 0), ("b1", "B", 5, 0), ("c1", "C", 5, 0))
    for it in w:
        p.on_enqueue(it, 0, set())
    assert ids(p.order(w, 0)) == ["a1", "b1", "c1", "a2", "a3"]
    p.on_admit(w[0], 0)  # A served: B is next
    rest = [x for x in w if x.request_id != "a1"]
    assert ids(p.order(rest, 0)) == ["b1", "c1", "a2", "a3"]
    p.on_admit(w[3], 0)
    rest = [x for x in rest if x.request_id != "b1"]
    assert ids(p.order(rest, 0)) == ["c1", "a2", "a3"]


def test_fair_picks_the_tenant_with_the_lowest_counter() -> None:
    p = FairPolicy()
    a1, a2, b1 = Item("a1", "A", seqno=0), Item("a2", "A", seqno=1), Item("b1", "B", seqno=2)
    p.on_enqueue(a1, 0, set())
    p.on_enqueue(a2, 0, {"A"})
    p.on_tokens("A", 100, 50)  # A was served 100 + 2*50 = 200 units
    p.on_enqueue(b1, 0, {"A"})  # B lifted to the min counter of the active tenants
    assert p.counters == {"A": 200.0, "B": 200.0}
    p.on_tokens("A", 0, 1)
    assert p.pick([a2, b1], 0).request_id == "b1"


def test_fair_weights_scale_service() -> None:
    p = FairPolicy({"gold": 4.0})
    p.on_tokens("gold", 40, 0)
    p.on_tokens("free", 40, 0)
    assert p.counters["gold"] == pytest.approx(10.0) and p.counters["free"] == pytest.approx(40.0)
    with pytest.raises(InvalidRequest):
        FairPolicy({"bad": 0.0})


def test_fair_newcomer_banks_no_credit_for_idle_time() -> None:
    p = FairPolicy()
    p.on_enqueue(Item("a", "A"), 0, set())
    p.on_tokens("A", 1000, 0)
    p.on_enqueue(Item("b", "B"), 0, {"A"})
    assert p.counters["B"] == p.counters["A"]  # not 0: B cannot monopolise the engine to catch up


def test_fair_order_interleaves_by_counter() -> None:
    p = FairPolicy()
    w = [Item(f"a{i}", "A", seqno=i, cost_hint=10) for i in range(4)] + [
        Item("b0", "B", seqno=10, cost_hint=10)
    ]
    assert ids(p.order(w, 0))[:3] == ["a0", "b0", "a1"]


def test_priority_pause_gap_and_its_aging() -> None:
    p = PriorityPolicy(aging_seconds=10, pause_gap=4)
    running = items(("flex", "x", 2, 0.0), ("default", "x", 5, 0.0), ("prio", "x", 8, 0.0))
    assert ids(p.runnable(running, now=0.0)) == ["default", "prio"]
    assert ids(p.runnable(running[:2], now=0.0)) == ["flex", "default"]  # a gap of 3 is under 4
    # The paused request ages: once it is within the gap it runs again.
    late_prio = [running[0], Item("prio", urgency=8, arrival=40.0, seqno=5)]
    assert ids(p.runnable(late_prio, now=40.0)) == ["flex", "prio"]
    assert ids(PriorityPolicy(pause_gap=None).runnable(running, now=0.0)) == ["flex", "default", "prio"]


def test_priority_an_aged_request_never_pauses_its_own_class() -> None:
    p = PriorityPolicy(aging_seconds=10, pause_gap=4)
    # flex-0 waited 100 s (effective urgency 12): the fresh flex requests still run beside it.
    running = items(("flex-0", "x", 2, 0.0), ("flex-1", "x", 2, 100.0), ("flex-2", "x", 2, 100.0))
    assert ids(p.runnable(running, now=100.0)) == ["flex-0", "flex-1", "flex-2"]
    # Beside priority work they sit out until they have aged to within the gap (20 s here).
    with_prio = [*running[1:], Item("prio", urgency=8, arrival=100.0, seqno=5)]
    assert ids(p.runnable(with_prio, now=100.0)) == ["prio"]
    assert ids(p.runnable(with_prio, now=120.5)) == ["flex-1", "flex-2", "prio"]
