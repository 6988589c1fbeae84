"""Live queueing estimates per model, and the formulas that turn them into predicted waits.

The model treats a loaded model as c servers (its engine slots). Inputs, measured live:
arrival rate λ (from the last arrivals in a sliding window), service time S = time a request
holds a slot (mean and variance over a window), and observed queue waits (submit → first slot).

Predictions of the mean time in queue:

* M/M/c, Erlang C: ``Wq = C(c, a) / (c·μ − λ)`` with ``a = λ/μ``, ``μ = 1/E[S]``.
* M/G/1, Pollaczek–Khinchine, applied to one server c times as fast (service ``S/c``):
  ``Wq = λ·E[(S/c)²] / (2·(1 − ρ))``. With exponential service and c = 1 both agree.

* Load-aware (the one to act on): batched decoding makes S depend on load (a fuller batch
  decodes each sequence more slowly), which neither formula above models, so at moderate load
  they under-predict the wait up to 3×. The model also learns the service-rate curve from the
  core's own steps (:class:`~llmos.scheduler.service_curve.ServiceCurve`: step time per batch
  size, steps per request) and solves the birth–death chain with those state-dependent rates,
  corrected for the variability of the work per request
  (:func:`~llmos.scheduler.birth_death.load_aware_wait`). ``bench/queue_model.py`` checks it
  against the scheduler's observed waits for ρ from 0.2 to 0.9 (``bench/results/queue_model.md``).

:meth:`QueueModel.predicted_wait` (at the current load) and :meth:`QueueModel.predicted_wait_at`
(at a given arrival rate spread over some replicas) are what an autoscaler reads.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable

from llmos.errors import InvalidRequest
from llmos.scheduler.birth_death import load_aware_wait
from llmos.scheduler.service_curve import ServiceCurve
from llmos.scheduler.stats import QueueModelStats


def erlang_b(c: int, a: float) -> float:
    """Blocking probability of M/M/c/c with offered load ``a`` Erlangs (stable recursion)."""
    if c < 1 or a < 0:
        raise InvalidRequest("erlang_b needs c >= 1 and a >= 0")
    b = 1.0
    for k in range(1, c + 1):
        b = a * b / (k + a * b)
    return b


def erlang_c(c: int, a: float) -> float:
    """Probability that an arrival waits in M/M/c with offered load ``a = λ/μ`` (needs a < c)."""
    if a >= c:
        return 1.0
    b = erlang_b(c, a)
    rho = a / c
    return b / (1.0 - rho * (1.0 - b))


def mmc_mean_wait(lam: float, mu: float, c: int) -> float:
    """Mean time in queue of M/M/c; ``math.inf`` when λ ≥ c·μ."""
    if lam <= 0:
        return 0.0
    if mu <= 0 or lam >= c * mu:
        return math.inf
    return erlang_c(c, lam / mu) / (c * mu - lam)


def mg1_mean_wait(lam: float, mean_s: float, var_s: float, servers: int = 1) -> float:
    """Pollaczek–Khinchine mean time in queue; ``servers`` > 1 pools them into one faster server."""
    if lam <= 0:
        return 0.0
    m = mean_s / servers
    second = var_s / servers**2 + m * m
    rho = lam * m
    if rho >= 1.0:
        return math.inf
    return lam * second / (2.0 * (1.0 - rho))


def _finite(x: float) -> float | None:
    return x if math.isfinite(x) else None


class QueueModel:
    """Sliding-window estimates for one model; not thread-safe (the scheduler holds its lock)."""

    def __init__(
        self,
        slots: int,
        *,
        clock: Callable[[], float],
        window: int = 256,
        work_window: int = 1024,
        default_service_s: float = 1.0,
    ) -> None:
        if slots < 1 or window < 2:
            raise InvalidRequest("a queue model needs slots >= 1 and window >= 2")
        self.slots = slots
        self._clock = clock
        self._default_service = default_service_s
        self._arrivals: deque[float] = deque(maxlen=window)
        self._services: deque[float] = deque(maxlen=window)
        self._waits: deque[float] = deque(maxlen=window)
        self.curve = ServiceCurve(slots, window=window, work_window=work_window)
        self.n_arrivals = 0
        self.n_services = 0
        self.n_waits = 0

    def record_arrival(self, t: float | None = None) -> None:
        self._arrivals.append(self._clock() if t is None else t)
        self.n_arrivals += 1

    def record_service(self, seconds: float, steps: int = 0) -> None:
        """A request left its slot after holding it ``seconds`` over ``steps`` engine steps."""
        self._services.append(max(0.0, seconds))
        self.n_services += 1
        self.curve.record_work(steps)

    def record_step(self, batch: int, seconds: float) -> None:
        """An engine step over ``batch`` sequences took ``seconds`` (from its start to the next's)."""
        self.curve.record_step(batch, seconds)

    def record_wait(self, seconds: float) -> None:
        self._waits.append(max(0.0, seconds))
        self.n_waits += 1

    def arrival_rate(self, now: float | None = None) -> float:
        """Arrivals per second over the window; decays when arrivals stop."""
        n = len(self._arrivals)
        if n < 2:
            return 0.0
        now = self._clock() if now is None else now
        first, last = self._arrivals[0], self._arrivals[-1]
        span = last - first
        gap = span / (n - 1)
        if now - last > 2 * gap:
            span = now - first
        return (n - 1) / span if span > 0 else 0.0

    def service_mean(self) -> float | None:
        return sum(self._services) / len(self._services) if self._services else None

    def service_var(self) -> float | None:
        n = len(self._services)
        if n < 2:
            return None
        m = sum(self._services) / n
        return sum((s - m) ** 2 for s in self._services) / (n - 1)

    def expected_service(self) -> float:
        """Mean slot-holding time, or the configured default before any request finished."""
        m = self.service_mean()
        return self._default_service if m is None else m

    def drain_time(self, departures: int) -> float:
        """Expected seconds until ``departures`` requests leave the slots (c servers, mean S)."""
        return max(0, departures) * self.expected_service() / self.slots

    def predicted_wait(self, now: float | None = None) -> float | None:
        """Predicted mean queue wait (seconds) at the arrival rate measured now; see
        :meth:`predicted_wait_at`."""
        return self.predicted_wait_at(self.arrival_rate(now))

    def predicted_wait_at(self, arrival_rate: float, replicas: int = 1) -> float | None:
        """Predicted mean queue wait (seconds) if ``arrival_rate`` requests/s were spread evenly
        over ``replicas`` copies of this model, each with this one's slots and service curve.

        ``math.inf`` when that load saturates them; None before anything was measured. Load-aware
        once a step and a finished request were seen; until then the M/M/c wait with the mean
        slot-holding time. Raises InvalidRequest for ``replicas`` < 1 or a negative rate.
        """
        if replicas < 1 or arrival_rate < 0:
            raise InvalidRequest("predicted_wait_at needs replicas >= 1 and a rate >= 0")
        lam = arrival_rate / replicas
        if self.curve.ready:
            return load_aware_wait(lam, self.curve.rates(), self.curve.steps_scv())
        mean = self.service_mean()
        if mean is None or mean <= 0:
            return None
        return mmc_mean_wait(lam, 1.0 / mean, self.slots)

    def estimate(self, now: float | None = None) -> QueueModelStats:
        lam = self.arrival_rate(now)
        mean = self.service_mean()
        var = self.service_var()
        c = self.slots
        rho = mmc = mg1 = None
        if mean is not None and mean > 0:
            rho = lam * mean / c
            mmc = _finite(mmc_mean_wait(lam, 1.0 / mean, c))
            mg1 = _finite(mg1_mean_wait(lam, mean, var if var is not None else mean * mean, c))
        predicted = self.predicted_wait_at(lam)
        waits = sorted(self._waits)
        p95 = waits[min(len(waits) - 1, math.ceil(0.95 * len(waits)) - 1)] if waits else None
        return QueueModelStats(
            arrival_rate=lam,
            service_mean_s=mean,
            service_var_s2=var,
            slots=c,
            utilization=rho,
            predicted_wait_mmc_s=mmc,
            predicted_wait_mg1_s=mg1,
            predicted_wait_s=None if predicted is None else _finite(predicted),
            step_time_s=self.curve.step_times(),
            steps_per_request=self.curve.steps_mean(),
            steps_scv=self.curve.steps_scv(),
            observed_wait_mean_s=sum(waits) / len(waits) if waits else None,
            observed_wait_p95_s=p95,
            arrivals=self.n_arrivals,
            services=self.n_services,
            waits=self.n_waits,
        )
