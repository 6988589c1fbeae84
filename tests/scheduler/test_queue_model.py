"""Queueing formulas against known values, and the live estimator on an injected clock."""

from __future__ import annotations

import math

import pytest

from llmos.scheduler import QueueModel, erlang_b, erlang_c, mg1_mean_wait, mmc_mean_wait


def erlang_c_direct(c: int, a: float) -> float:
    top = a**c / math.factorial(c) * c / (c - a)
    return top / (sum(a**k / math.factorial(k) for k in range(c)) + top)


def test_erlang_c_textbook_examples() -> None:
    # M/M/2, λ = μ = 1: P(wait) = 1/3, Wq = 1/3 (Lq = 2ρ³/(1−ρ²) with ρ = 1/2, Wq = Lq/λ).
    assert erlang_c(2, 1.0) == pytest.approx(1 / 3)
    assert mmc_mean_wait(1.0, 1.0, 2) == pytest.approx(1 / 3)
    # M/M/3, λ = 2, μ = 1: P(wait) = 4/9, Wq = 4/9.
    assert erlang_c(3, 2.0) == pytest.approx(4 / 9)
    assert mmc_mean_wait(2.0, 1.0, 3) == pytest.approx(4 / 9)
    # Erlang B: 2 servers, 1 Erlang: B = (1/2) / (1 + 1 + 1/2) = 0.2.
    assert erlang_b(2, 1.0) == pytest.approx(0.2)


@pytest.mark.parametrize(("c", "a"), [(1, 0.5), (4, 3.2), (10, 8.0), (16, 15.5), (32, 20.0)])
def test_erlang_c_matches_the_closed_form(c: int, a: float) -> None:
    assert erlang_c(c, a) == pytest.approx(erlang_c_direct(c, a), rel=1e-9)


@pytest.mark.parametrize("rho", [0.1, 0.5, 0.8, 0.95])
def test_mm1_special_case_agrees_across_formulas(rho: float) -> None:
    mu = 2.0
    lam = rho * mu
    mm1 = rho / (mu - lam)
    assert erlang_c(1, rho) == pytest.approx(rho)
    assert mmc_mean_wait(lam, mu, 1) == pytest.approx(mm1)
    # Pollaczek–Khinchine with exponential service (variance = mean²) is M/M/1.
    assert mg1_mean_wait(lam, 1 / mu, (1 / mu) ** 2) == pytest.approx(mm1)


def test_pk_deterministic_service_halves_the_wait() -> None:
    # M/D/1 waits half as long as M/M/1 at the same load.
    assert mg1_mean_wait(0.5, 1.0, 0.0) == pytest.approx(0.5 * mg1_mean_wait(0.5, 1.0, 1.0))


def test_saturation_is_unbounded() -> None:
    assert math.isinf(mmc_mean_wait(2.0, 1.0, 2))
    assert math.isinf(mg1_mean_wait(1.0, 1.0, 1.0))
    assert mmc_mean_wait(0.0, 1.0, 2) == 0.0


def test_live_estimates_from_an_injected_clock() -> None:
    now = [0.0]
    qm = QueueModel(2, clock=lambda: now[0])
    for i in range(11):
        qm.record_arrival(i * 0.5)  # λ = 2/s
    now[0] = 5.0
    for s in (1.0, 0.5, 1.5, 1.0):
        qm.record_service(s)
    for w in [0.1] * 19 + [2.0]:
        qm.record_wait(w)
    est = qm.estimate()
    assert est.arrival_rate == pytest.approx(2.0)
    assert est.service_mean_s == pytest.approx(1.0)
    assert est.service_var_s2 == pytest.approx(1 / 6)
    assert est.utilization == pytest.approx(1.0)  # λ·E[S]/c = 2·1/2
    assert est.predicted_wait_mmc_s is None and est.predicted_wait_mg1_s is None  # saturated
    assert est.observed_wait_mean_s == pytest.approx((0.1 * 19 + 2.0) / 20)
    assert est.observed_wait_p95_s == pytest.approx(0.1)
    qm.record_service(0.0)  # mean 0.8 → ρ = 0.8
    est = qm.estimate()
    assert est.utilization == pytest.approx(0.8)
    assert est.predicted_wait_mmc_s == pytest.approx(mmc_mean_wait(2.0, 1 / 0.8, 2))


def test_arrival_rate_decays_when_arrivals_stop() -> None:
    now = [0.0]
    qm = QueueModel(1, clock=lambda: now[0])
    for i in range(5):
        qm.record_arrival(float(i))
    now[0] = 4.0
    assert qm.arrival_rate() == pytest.approx(1.0)
    now[0] = 40.0
    assert qm.arrival_rate() == pytest.approx(4 / 40)
