"""Mean queue wait of a c-server queue whose service rate depends on how many are in service.

Batched decoding is not c independent servers: with k sequences in the batch each engine step
takes τ(k) seconds (a fuller batch steps more slowly) and every running sequence advances one
token per step, so the k requests in service leave at a total rate ``μ_k = k / (E[K]·τ(k))``
(K: the steps a request holds a slot). With ``λ`` Poisson arrivals and FCFS into free slots,
the number in system is a birth–death chain with birth rate λ and death rate μ_min(k, c); its
stationary law gives the mean queue length, and Little's law the mean wait ``Wq = Lq / λ``.
With ``μ_k = k·μ`` this is exactly M/M/c (Erlang C); with c = 1, M/M/1.

A request's K is nearly fixed for a given workload (its prompt chunks plus its tokens), not
exponential. The chain's wait is therefore scaled by the Allen–Cunneen factor
``(ca² + cs²) / 2`` with Poisson arrivals (``ca²`` = 1) and ``cs²`` the squared coefficient of
variation of K: ½ for fixed-length requests, 1 for exponential ones. (Cosmetatos' refinement
for M/D/c, which raises the factor at light load, over-predicted the scheduler's waits at
ρ ≤ 0.5 in ``bench/queue_model.py``; the plain factor is within its noise there.)
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


def variability_factor(scv: float) -> float:
    """How much a service time with squared coefficient of variation ``scv`` scales the
    exponential-service wait, under Poisson arrivals (Allen–Cunneen; 1 for ``scv`` = 1)."""
    return (1.0 + max(0.0, scv)) / 2.0


def load_aware_wait(lam: float, rates: Sequence[float], scv: float = 1.0) -> float:
    """The chain's mean wait corrected for service variability ``scv`` (``math.inf`` when
    saturated). With constant per-server rates and ``scv`` = 1 it is the M/M/c wait."""
    base = chain_wait(lam, rates)
    if base == 0.0 or math.isinf(base):
        return base
    return base * variability_factor(scv)
