"""The prefix-affinity router: longest known prefix, bounded imbalance, a bounded table."""

from __future__ import annotations

import pytest

from llmos.cluster.router import PrefixRouter, prefix_hashes
from llmos.errors import EngineError, InvalidRequest

SYSTEM_A = list(range(1000, 1064))  # two blocks of 32
SYSTEM_B = list(range(2000, 2064))


def test_prefix_hashes_name_whole_prefixes() -> None:
    a = prefix_hashes([*SYSTEM_A, 1, 2, 3], block=32)
    b = prefix_hashes([*SYSTEM_A[:32], 9, *SYSTEM_A[33:]], block=32)
    assert len(a) == 2 and len(b) == 2
    assert a[0] == b[0] and a[1] != b[1]  # same first block, different second: the chain differs
    assert prefix_hashes(list(range(31)), block=32) == []


def test_requests_sharing_a_prompt_start_go_where_it_is_cached() -> None:
    router = PrefixRouter(block=32, slack=100)
    loads = {"r1": 0, "r2": 0}
    first = router.route([*SYSTEM_A, 5, 6], loads)
    assert first.reason == "load" and first.matched_blocks == 0
    other = router.route([*SYSTEM_B, 5, 6], {first.replica: 50, "r1" if first.replica == "r2" else "r2": 0})
    assert other.replica != first.replica  # no known prefix: the least loaded
    again = router.route([*SYSTEM_A, 7, 8, 9], {"r1": 10, "r2": 10})
    assert again.replica == first.replica and again.reason == "affinity" and again.matched_blocks == 2


def test_the_longest_known_prefix_wins() -> None:
    router = PrefixRouter(block=32, epsilon=0.0, slack=0)
    other = SYSTEM_A[:32] + [0] * 32  # A's first block, then a different second one
    router.route(other, {"r1": 0, "r2": 5})  # r1 holds [A1, X2]
    assert router.route(SYSTEM_A, {"r1": 100, "r2": 0}).reason == "spill"  # r2 now holds [A1, A2]
    assert router.route([*other, 1], {"r1": 0, "r2": 0}) == router.route([*other, 2], {"r1": 0, "r2": 0})
    d = router.route([*other, 3], {"r1": 0, "r2": 0})
    assert d.replica == "r1" and d.matched_blocks == 2  # [A1, X2] beats A1 alone, now r2's


def test_an_overloaded_owner_spills_to_the_least_loaded_which_then_also_holds_it() -> None:
    router = PrefixRouter(block=32, epsilon=0.25, slack=0)
    router.route(SYSTEM_A, {"r1": 0, "r2": 1})
    spill = router.route(SYSTEM_A, {"r1": 1000, "r2": 10})  # mean 505, bound 631: r1 is over it
    assert spill.replica == "r2" and spill.reason == "spill"
    back = router.route(SYSTEM_A, {"r1": 10, "r2": 10})
    assert back.replica == "r2" and back.reason == "affinity"  # the spill recorded r2 as holding it
    assert router.decisions == {"affinity": 1, "spill": 1, "load": 1}


def test_a_replica_that_left_is_forgotten() -> None:
    router = PrefixRouter(block=32)
    router.route(SYSTEM_A, {"r1": 0, "r2": 1})
    router.forget("r1")
    assert router.entries == 0
    assert router.route(SYSTEM_A, {"r2": 0, "r3": 0}).reason == "load"
    # an owner that is not among the live replicas is never chosen
    router.route(SYSTEM_B, {"r2": 0, "r3": 1})
    assert router.route(SYSTEM_B, {"r3": 0}).replica == "r3"


def test_the_table_is_bounded() -> None:
    router = PrefixRouter(block=4, capacity=10)
    for i in range(50):
        router.route([i, i, i, i, 1, 1, 1, 1], {"r1": 0})
    assert router.entries == 10


def test_no_replica_and_bad_settings_are_errors() -> None:
    with pytest.raises(EngineError):
        PrefixRouter().route(SYSTEM_A, {})
    with pytest.raises(InvalidRequest):
        PrefixRouter(block=0)
