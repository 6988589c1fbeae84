"""The autoscaler on a fake clock: up when the predicted wait passes the target, down after a
quiet period, the minimum restored, nothing without room."""

from __future__ import annotations

import math

import pytest

from llmos.cluster.autoscaler import Autoscaler, ModelLoad, replica_rates
from llmos.errors import InvalidRequest
from llmos.scheduler.birth_death import load_aware_wait


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


# One replica: 4 slots, each request 10 steps, a step 0.1 s alone and 0.16 s with 4 in the batch.
RATES = replica_rates((0.10, 0.12, 0.14, 0.16), 10.0)


def scaler(clock: Clock, **kw: float) -> Autoscaler:
    args = {
        "min_replicas": 1,
        "max_replicas": 4,
        "target_wait_s": 1.0,
        "quiet_period_s": 60.0,
        "up_cooldown_s": 10.0,
    }
    args.update(kw)
    return Autoscaler(clock=clock, **args)  # type: ignore[arg-type]


def test_replica_rates_follow_the_service_curve() -> None:
    assert RATES[0] == pytest.approx(1.0)  # one in service: 10 steps of 0.1 s
    assert RATES[3] == pytest.approx(4 / 1.6)
    assert replica_rates((), 10.0) == () and replica_rates((0.1,), None) == ()


def test_the_predicted_wait_is_the_load_aware_chain_split_over_replicas() -> None:
    load = ModelLoad(arrival_rate=4.0, rates=RATES)
    assert load.predicted_wait(2) == pytest.approx(load_aware_wait(2.0, RATES))
    assert math.isinf(load.predicted_wait(1) or 0)  # 4 req/s saturates one replica (max 2.5/s)
    assert ModelLoad(arrival_rate=1.0, rates=()).predicted_wait(1) is None


def test_up_when_the_wait_is_over_target_once_per_cooldown() -> None:
    clock = Clock()
    s = scaler(clock, max_replicas=8)
    load = ModelLoad(arrival_rate=2.4, rates=RATES)
    d = s.decide("m", 1, load, has_room=True)
    assert d is not None and d.action == "up" and d.replicas == 2 and "above the target" in d.reason
    assert s.decide("m", 2, ModelLoad(arrival_rate=9.6, rates=RATES), has_room=True) is None  # cooldown
    clock.t = 11.0
    d = s.decide("m", 2, ModelLoad(arrival_rate=9.6, rates=RATES), has_room=True)
    # 9.6 req/s saturates 2 and 3 replicas (2.5/s each at most); 5 wait under 1 s: several at once
    assert d is not None and d.replicas == 5
    assert ModelLoad(arrival_rate=9.6, rates=RATES).predicted_wait(5) <= 1.0  # type: ignore[operator]
    assert s.decide("m", 4, ModelLoad(arrival_rate=100.0, rates=RATES), has_room=True) is None  # cooldown
    clock.t = 30.0
    d = s.decide("m", 3, ModelLoad(arrival_rate=100.0, rates=RATES), has_room=True)
    assert d is not None and d.replicas == 8 and "8 is the maximum" in d.reason


def test_no_room_and_the_maximum_hold_it_back() -> None:
    clock = Clock()
    s = scaler(clock, max_replicas=2)
    hot = ModelLoad(arrival_rate=10.0, rates=RATES)
    assert s.decide("m", 1, hot, has_room=False) is None
    assert s.decide("m", 2, hot, has_room=True) is None


def test_down_only_after_a_whole_quiet_period() -> None:
    clock = Clock()
    s = scaler(clock)
    quiet = ModelLoad(arrival_rate=0.1, rates=RATES)
    assert s.decide("m", 3, quiet, has_room=True) is None  # the quiet period starts
    clock.t = 30.0
    assert s.decide("m", 3, ModelLoad(arrival_rate=5.0, rates=RATES), has_room=False) is None  # a burst
    clock.t = 40.0
    assert s.decide("m", 3, quiet, has_room=True) is None  # starts again
    clock.t = 99.0
    assert s.decide("m", 3, quiet, has_room=True) is None
    clock.t = 100.0
    d = s.decide("m", 3, quiet, has_room=True)
    assert d is not None and d.action == "down" and d.replicas == 2 and "60 s" in d.reason
    assert s.decide("m", 1, quiet, has_room=True) is None  # never below the minimum


def test_not_down_while_requests_queue() -> None:
    clock = Clock()
    s = scaler(clock, quiet_period_s=0.0)
    assert s.decide("m", 2, ModelLoad(arrival_rate=0.1, rates=RATES, queued=3), has_room=True) is None


def test_below_the_minimum_it_restores_when_a_node_has_room() -> None:
    s = scaler(Clock(), min_replicas=2)
    idle = ModelLoad(arrival_rate=0.0, rates=())
    assert s.decide("m", 1, idle, has_room=False) is None
    d = s.decide("m", 1, idle, has_room=True)
    assert d is not None and d.action == "up" and "minimum" in d.reason


def test_bad_bounds_are_refused() -> None:
    with pytest.raises(InvalidRequest):
        scaler(Clock(), min_replicas=3, max_replicas=2)
    with pytest.raises(InvalidRequest):
        scaler(Clock(), target_wait_s=0)
