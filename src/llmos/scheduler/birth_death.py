"""Mean queue wait of a c-server queue whose service rate depends on how many are in service.

Batched decoding is not c independent servers: with k sequences in the batch each engine step
takes τ(k) seconds (a fuller batch steps more slowly) and every running sequence advances one
token per step, so the k requests in service leave at a total rate ``μ_k = k / (E[K]·τ(k))``
(K: the steps a request holds a slot). With ``λ`` Poisson arrivals and FCFS into free slots,
the number in system is a birth–death chain with birth rate λ and death rate μ_min(k, c); its
stationary law gives the mean queue length, and Little's law the mean wait ``Wq = Lq / λ``.
With ``μ_k = k·μ`` this is exactly M/M/c (Erlang C); with c = 1, M/M/1.

A request's K is not exponential: it is nearly fixed for a fixed-length workload (its prompt
chunks plus its tokens) and spread, with a squared coefficient of variation ``cs²`` well
below 1, for mixed lengths. The chain's wait is therefore corrected with the interpolation
between M/D/c and M/M/c of Page and Cosmetatos, ``Wq(M/G/c) ≈ cs²·Wq(M/M/c) + (1 − cs²)·Wq(M/D/c)``,
with Cosmetatos' ``Wq(M/D/c) ≈ ½·Wq(M/M/c)·(1 + (1−ρ)(c−1)(√(4+5c) − 2)/(16ρc))``, kept under
its light-traffic limit ``c/(c+1)`` (the wait for the first of c uniform residuals, against
exponential ones); for ``cs² ≥ 1`` the Allen–Cunneen factor ``(1 + cs²)/2``. ρ is the load at a
full batch, ``λ/μ_c``, the rate that matters once requests queue. In heavy traffic (ρ → 1) the
factor is Allen–Cunneen's for any ``cs²``; below it the plain ``(1 + cs²)/2`` under-predicts a
c-server queue: for c = 4 an M/G/4 whose service is uniform on 8 … 64 steps (``cs²`` 0.21)
waits 0.73, 0.68 and 0.65 × its M/M/4 wait at ρ 0.3, 0.5 and 0.7, not 0.6, and that is what
the scheduler's mixed-length waits showed in ``bench/queue_model.py``
(``bench/results/queue_model.md``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from llmos.errors import InvalidRequest


def chain_wait(lam: float, rates: Sequence[float]) -> float:
    """Mean queue wait of the birth–death chain with arrival rate ``lam`` and total departure
    rates ``rates[k-1]`` with k = 1 … c in system (``rates[c-1]`` beyond c).

    Returns 0 with no arrivals and ``math.inf`` when ``lam >= rates[-1]`` (the queue grows
    without bound). Raises InvalidRequest for no rates or a rate that is not positive.
    """
    if not rates or any(not (r > 0) for r in rates):
        raise InvalidRequest("a birth-death chain needs positive departure rates")
    if lam <= 0:
        return 0.0
    r = lam / rates[-1]
    if r >= 1.0:
        return math.inf
    term, total = 1.0, 1.0  # t_0 = 1
    for rate in rates:
        term *= lam / rate
        total += term
    # term is now t_c; states beyond c form a geometric tail t_c·r^j.
    total += term * r / (1.0 - r)
    lq = term * r / (1.0 - r) ** 2 / total
    return lq / lam


def variability_factor(scv: float, rho: float = 1.0, servers: int = 1) -> float:
    """How much a service time with squared coefficient of variation ``scv`` scales the
    exponential-service wait of ``servers`` servers at load ``rho``, under Poisson arrivals
    (see the module docstring): 1 for ``scv`` = 1, ½ for fixed service on one server or in
    heavy traffic, up to ``c/(c+1)`` for fixed service on c servers in light traffic.

    Raises InvalidRequest for ``servers`` < 1."""
    if servers < 1:
        raise InvalidRequest("variability_factor needs servers >= 1")
    scv = max(0.0, scv)
    if scv >= 1.0:
        return (1.0 + scv) / 2.0
    rho = min(max(rho, 1e-9), 1.0)
    c = servers
    cosmetatos = 1.0 + (1.0 - rho) * (c - 1) * (math.sqrt(4.0 + 5.0 * c) - 2.0) / (16.0 * rho * c)
    deterministic = min(0.5 * cosmetatos, c / (c + 1.0))
    return scv + (1.0 - scv) * deterministic


def load_aware_wait(lam: float, rates: Sequence[float], scv: float = 1.0) -> float:
    """The chain's mean wait corrected for service variability ``scv`` at the load ``λ/μ_c``
    with c = ``len(rates)`` slots (``math.inf`` when saturated). With constant per-server rates
    and ``scv`` = 1 it is the M/M/c wait."""
    base = chain_wait(lam, rates)
    if base == 0.0 or math.isinf(base):
        return base
    return base * variability_factor(scv, lam / rates[-1], len(rates))
