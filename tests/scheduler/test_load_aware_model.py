"""The load-aware queueing model: the birth-death chain against textbook closed forms, the
service curve learned from steps, and the scheduler feeding it."""

from __future__ import annotations

import heapq
import math
import random
from collections.abc import Callable

import pytest

from llmos.errors import InvalidRequest
from llmos.scheduler import QueueModel, erlang_c, mmc_mean_wait
from llmos.scheduler.birth_death import chain_wait, load_aware_wait, variability_factor
from llmos.scheduler.service_curve import ServiceCurve

from .factories import Driver, VirtualClock, make_engine, make_request, make_scheduler


@pytest.mark.parametrize(("lam", "mu"), [(0.2, 1.0), (0.5, 1.0), (0.9, 1.0), (3.0, 4.0)])
def test_chain_with_one_server_is_mm1(lam: float, mu: float) -> None:
    rho = lam / mu
    assert chain_wait(lam, [mu]) == pytest.approx(rho / (mu - lam), rel=1e-12)


@pytest.mark.parametrize(("c", "lam", "mu"), [(2, 1.0, 1.0), (3, 2.0, 1.0), (4, 3.5, 1.0), (8, 1.0, 0.5)])
def test_chain_with_constant_per_server_rates_is_erlang_c(c: int, lam: float, mu: float) -> None:
    rates = [k * mu for k in range(1, c + 1)]
    assert chain_wait(lam, rates) == pytest.approx(mmc_mean_wait(lam, mu, c), rel=1e-12)
    # The textbook form: Wq = C(c, a) / (c·μ − λ).
    assert chain_wait(lam, rates) == pytest.approx(erlang_c(c, lam / mu) / (c * mu - lam), rel=1e-12)
    # Exponential service: no variability correction.
    assert load_aware_wait(lam, rates, scv=1.0) == pytest.approx(mmc_mean_wait(lam, mu, c), rel=1e-12)


def test_chain_with_state_dependent_rates_by_hand() -> None:
    # λ = 1, μ1 = 1, μ2 = 1.5 (a batch of two is less than twice as fast): p_k ∝ 1, 1, 2/3·r^j
    # with r = 2/3; Lq = t2·r/(1−r)² / Z, Z = 1 + 1 + (2/3)/(1−r).
    t2, r = 2 / 3, 2 / 3
    z = 2 + t2 / (1 - r)
    assert chain_wait(1.0, [1.0, 1.5]) == pytest.approx(t2 * r / (1 - r) ** 2 / z, rel=1e-12)
    # Slower at a full batch than k·μ: waits longer than M/M/2 with μ = 1.
    assert chain_wait(1.0, [1.0, 1.5]) > mmc_mean_wait(1.0, 1.0, 2)


def test_chain_edges() -> None:
    assert chain_wait(0.0, [1.0, 2.0]) == 0.0
    assert math.isinf(chain_wait(2.0, [1.0, 2.0]))
    assert math.isinf(load_aware_wait(3.0, [1.0, 2.0], scv=0.0))
    with pytest.raises(InvalidRequest):
        chain_wait(1.0, [])
    with pytest.raises(InvalidRequest):
        chain_wait(1.0, [1.0, 0.0])


def test_variability_factor() -> None:
    assert variability_factor(1.0) == 1.0  # exponential service: M/M/c as it is
    assert variability_factor(3.0, 0.3, 4) == 2.0  # Allen–Cunneen (1 + cs²)/2 above cs² = 1
    assert variability_factor(0.0) == 0.5  # fixed work: M/D/1 is exactly half of M/M/1 ...
    assert variability_factor(0.0, 0.2, 1) == 0.5  # ... at any load
    assert load_aware_wait(0.7, [1.0], scv=0.0) == pytest.approx(0.5 * 0.7 / (1 - 0.7))
    # Heavy traffic: Allen–Cunneen for any number of servers.
    assert variability_factor(0.21, 1.0, 4) == pytest.approx(0.605)
    # c servers, fixed work, lighter load: more than ½ (the first of c residuals is shorter
    # than an exponential's), never more than the light-traffic limit c/(c+1).
    light = [variability_factor(0.0, rho, 4) for rho in (0.9, 0.7, 0.5, 0.3, 0.2)]
    assert light == sorted(light) and light[0] > 0.5 and light[-1] <= 0.8
    assert variability_factor(0.0, 0.01, 16) == pytest.approx(16 / 17)
    # Between fixed and exponential work it interpolates.
    assert variability_factor(0.0, 0.3, 4) < variability_factor(0.21, 0.3, 4) < 1.0
    with pytest.raises(InvalidRequest):
        variability_factor(0.5, 0.5, 0)


def _simulated_wait(servers: int, lam: float, service: Callable[[random.Random], float], n: int) -> float:
    """Mean wait of FCFS M/G/c over ``n`` Poisson arrivals (Kiefer–Wolfowitz: each arrival
    takes the server that frees first)."""
    rng = random.Random(1)
    free = [0.0] * servers
    t = total = 0.0
    for _ in range(n):
        t += rng.expovariate(lam)
        start = max(t, free[0])
        total += start - t
        heapq.heapreplace(free, start + service(rng))
    return total / n


@pytest.mark.parametrize(
    ("lengths", "rho"),
    [
        ((32, 32), 0.3),  # fixed-length requests
        ((8, 64), 0.3),  # mixed lengths (cs² ≈ 0.21), bench/queue_model.py's
        ((8, 64), 0.5),
    ],
)
def test_predicted_wait_matches_a_simulated_queue_of_fixed_or_mixed_lengths(
    lengths: tuple[int, int], rho: float
) -> None:
    # A step takes τ at any batch size, so the slots are 4 plain servers with service K·τ and
    # the learned prediction must be the M/G/4 wait. Allen–Cunneen's (1 + cs²)/2 alone is its
    # heavy-traffic limit and under-predicts here by 14 – 22 %.
    tau, rng = 0.05, random.Random(3)
    qm = QueueModel(4, clock=lambda: 0.0)
    for k in range(1, 5):
        qm.record_step(k, tau)
    ks = [rng.randint(*lengths) for _ in range(256)]
    for k in ks:
        qm.record_service(k * tau, steps=k)
    lam = rho * 4 / (sum(ks) / len(ks) * tau)
    simulated = _simulated_wait(4, lam, lambda r: r.choice(ks) * tau, 60_000)
    predicted = qm.predicted_wait_at(lam)
    assert predicted == pytest.approx(simulated, rel=0.1)
    heavy_traffic = chain_wait(lam, qm.curve.rates()) * (1 + qm.curve.steps_scv()) / 2
    if rho < 0.5 or lengths[0] != lengths[1]:
        assert heavy_traffic < 0.9 * simulated


def test_service_curve_learns_step_times_and_work() -> None:
    curve = ServiceCurve(4)
    assert not curve.ready and curve.rates() == ()
    for _ in range(10):
        curve.record_step(1, 0.010)
        curve.record_step(2, 0.012)
    curve.record_work(30)
    curve.record_work(34)
    assert curve.ready
    taus = curve.step_times()
    assert taus[:2] == pytest.approx((0.010, 0.012))
    assert taus[2:] == pytest.approx((0.014, 0.016))  # extrapolated along the line
    assert curve.steps_mean() == 32
    assert curve.steps_scv() == pytest.approx(8 / 32**2)
    assert curve.rates() == pytest.approx(tuple(k / (32 * t) for k, t in zip(range(1, 5), taus, strict=True)))
    assert len(curve.rates(servers=6)) == 6


def test_service_curve_averages_work_over_its_own_longer_window() -> None:
    curve = ServiceCurve(2, window=4, work_window=6)
    for k in (100, 100, 1, 2, 3, 4, 5, 6):  # the two 100s leave the window of six
        curve.record_work(k)
    for _ in range(10):
        curve.record_step(1, 0.01)  # the step window (4) is not the work window
    assert curve.steps_mean() == pytest.approx(3.5)
    assert curve.steps_scv() == pytest.approx(3.5 / 3.5**2)  # sample variance of 1 … 6 is 3.5
    # A queue model keeps the last 1,024 requests' work, four times its other windows (256).
    qm = QueueModel(2, clock=lambda: 0.0)
    for k in [10] * 300 + [20] * 300:
        qm.record_service(1.0, steps=k)
    assert qm.curve.steps_mean() == 15
    with pytest.raises(InvalidRequest):
        ServiceCurve(2, work_window=1)


def test_service_curve_never_extrapolates_a_faster_full_batch() -> None:
    curve = ServiceCurve(3)
    curve.record_step(1, 0.02)
    curve.record_step(2, 0.01)  # noise: a batch of two seemed faster
    assert curve.step_times()[2] == pytest.approx(0.01)


def test_predicted_wait_at_matches_the_chain_and_splits_load_over_replicas() -> None:
    now = [0.0]
    qm = QueueModel(2, clock=lambda: now[0])
    assert qm.predicted_wait_at(1.0) is None  # nothing measured
    qm.record_service(0.5)  # before any step: M/M/c with the mean slot-holding time
    assert qm.predicted_wait_at(1.0) == pytest.approx(mmc_mean_wait(1.0, 2.0, 2))
    for _ in range(4):
        qm.record_step(1, 0.01)
        qm.record_step(2, 0.015)
    for _ in range(3):
        qm.record_service(0.5, steps=40)
    rates = [1 / (40 * 0.01), 2 / (40 * 0.015)]
    assert qm.predicted_wait_at(2.0) == pytest.approx(load_aware_wait(2.0, rates, 0.0))
    assert qm.predicted_wait_at(4.0, replicas=2) == pytest.approx(qm.predicted_wait_at(2.0))
    assert qm.predicted_wait_at(100.0) == math.inf
    with pytest.raises(InvalidRequest):
        qm.predicted_wait_at(1.0, replicas=0)
    for i in range(11):
        qm.record_arrival(i * 0.5)  # λ = 2/s
    now[0] = 5.0
    assert qm.predicted_wait() == pytest.approx(qm.predicted_wait_at(2.0))
    est = qm.estimate()
    assert est.predicted_wait_s == pytest.approx(qm.predicted_wait_at(2.0))
    assert est.step_time_s == pytest.approx((0.01, 0.015)) and est.steps_per_request == 40


def test_scheduler_feeds_the_curve_from_its_own_steps() -> None:
    clock = VirtualClock()
    # Step cost 1 ms + 1 ms per token: a fuller batch steps more slowly.
    s = make_scheduler(make_engine(clock, n_slots=2, step_cost_s=0.001, token_cost_s=0.001), clock)
    d = Driver(s)
    ids = [d.add(make_request(f"r{i}", prompt_len=1, max_tokens=6)) for i in range(4)]
    d.drive(lambda: all(d.done(r) for r in ids))
    q = s.snapshot().queue_model
    # Each request: 1 prompt token sampling the first token, then 5 decode steps.
    assert q.steps_per_request == 6 and q.steps_scv == 0.0
    assert q.step_time_s[1] == pytest.approx(0.003)  # two sequences: 1 ms + 2 tokens
    assert q.predicted_wait_s is not None
