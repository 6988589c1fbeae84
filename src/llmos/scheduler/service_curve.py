"""The service-rate curve of one model, learned online from its own engine steps.

Two things are measured as the core runs: how long a step takes with k sequences in the batch
(τ(k), a sliding mean per k), and how many steps a finished request held a slot (K: its mean and
squared coefficient of variation). Together they give the total departure rate with k requests
in service, ``μ_k = k / (E[K]·τ(k))``, the input of :func:`llmos.scheduler.birth_death.chain_wait`.

K is averaged over a longer window (1,024 requests) than the step times (256 steps per batch
size): with mixed lengths (8 – 64 tokens, cs² 0.21) the mean of 256 requests is off by 3 % (one
standard deviation), and near saturation the predicted wait moves ten times as much as the
capacity (at ρ 0.9, 3 % is a third of the wait). Its sums are kept as requests come and go, so
reading it costs nothing.

Batch sizes not seen yet (a lightly loaded model never fills its batch) are extrapolated from
the ones seen with a least-squares line ``τ(k) = a + b·k`` (b ≥ 0: a fuller batch is never
faster), or taken as the one seen when there is only one.
"""

from __future__ import annotations

from collections import deque

from llmos.errors import InvalidRequest


class ServiceCurve:
    """Step times per batch size and steps per request, over sliding windows. Not thread-safe."""

    def __init__(self, slots: int, *, window: int = 256, work_window: int = 1024) -> None:
        if slots < 1 or window < 2 or work_window < 2:
            raise InvalidRequest("a service curve needs slots >= 1 and windows >= 2")
        self.slots = slots
        self._steps: list[deque[float]] = [deque(maxlen=window) for _ in range(slots)]
        self._work: deque[int] = deque(maxlen=work_window)
        self._work_sum = 0
        self._work_sq = 0
        """Σ K and Σ K² over the work window (integers: exact however long it runs)."""

    def record_step(self, batch: int, seconds: float) -> None:
        """One engine step over ``batch`` sequences took ``seconds`` (start to next start)."""
        if batch < 1 or seconds <= 0:
            return
        self._steps[min(batch, self.slots) - 1].append(seconds)

    def record_work(self, steps: int) -> None:
        """A finished request held a slot for ``steps`` engine steps."""
        if steps < 1:
            return
        if len(self._work) == self._work.maxlen:
            old = self._work[0]
            self._work_sum -= old
            self._work_sq -= old * old
        self._work.append(steps)
        self._work_sum += steps
        self._work_sq += steps * steps

    @property
    def ready(self) -> bool:
        """Whether there is enough to predict with: a step time and a finished request."""
        return bool(self._work) and any(self._steps)

    def steps_mean(self) -> float | None:
        return self._work_sum / len(self._work) if self._work else None

    def steps_scv(self) -> float:
        """Squared coefficient of variation of K (1, as for exponential service, until known)."""
        n = len(self._work)
        if n < 2:
            return 1.0
        m = self._work_sum / n
        var = max(0, n * self._work_sq - self._work_sum**2) / (n * (n - 1))
        return var / (m * m)

    def step_times(self) -> tuple[float, ...]:
        """τ(1) … τ(slots) in seconds: measured where seen, extrapolated elsewhere; () when
        no step was seen."""
        seen = [(k + 1, sum(d) / len(d), len(d)) for k, d in enumerate(self._steps) if d]
        if not seen:
            return ()
        measured = {k: t for k, t, _ in seen}
        if len(seen) == 1:
            a, b = seen[0][1], 0.0
        else:
            w = sum(n for _, _, n in seen)
            mk = sum(k * n for k, _, n in seen) / w
            mt = sum(t * n for _, t, n in seen) / w
            sxx = sum(n * (k - mk) ** 2 for k, _, n in seen)
            b = max(0.0, sum(n * (k - mk) * (t - mt) for k, t, n in seen) / sxx)
            a = mt - b * mk
        last = seen[-1]
        out = []
        for k in range(1, self.slots + 1):
            if k in measured:
                out.append(measured[k])
            elif k > last[0]:  # beyond what was seen: continue from the last measured point
                out.append(last[1] + b * (k - last[0]))
            else:
                out.append(max(1e-9, a + b * k))
        return tuple(out)

    def rates(self, servers: int | None = None) -> tuple[float, ...]:
        """Total departure rates μ_1 … μ_c (requests/s) with k in service; () until :attr:`ready`.

        ``servers`` > slots models more slots than measured (τ extrapolated along the line)."""
        k_mean = self.steps_mean()
        taus = self.step_times()
        if k_mean is None or not taus:
            return ()
        c = servers or self.slots
        if c > len(taus):
            slope = (taus[-1] - taus[0]) / (len(taus) - 1) if len(taus) > 1 else 0.0
            taus = taus + tuple(taus[-1] + slope * j for j in range(1, c - len(taus) + 1))
        return tuple(k / (k_mean * taus[k - 1]) for k in range(1, c + 1))
