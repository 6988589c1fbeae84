"""How many replicas a model needs, from the load-aware queueing model.

Each replica's engine core measures its own service curve (step time by batch size, steps per
request; :mod:`llmos.scheduler.service_curve`). Given the model's total arrival rate, the
birth–death chain of :mod:`llmos.scheduler.birth_death` predicts the mean queue wait with ``n``
replicas sharing it evenly (what the router's bounded imbalance keeps close to true).

:meth:`Autoscaler.decide` is a pure function of that load, the replica count, whether a node has
room, and the clock:

* **up** when the predicted wait with the current replicas is above the target (or the model is
  saturated) and a node has room: to the fewest replicas the model predicts keep the wait under
  the target (several at once after a step in load), at most once per ``up_cooldown_s`` (new
  replicas need time to load; the count given includes those still loading);
* **down** when ``n - 1`` replicas would keep the predicted wait under ``down_fraction`` of the
  target, and that has held without a break for ``quiet_period_s``;
* **up** to ``min_replicas`` whenever fewer run (a replica died), room permitting.

Every decision carries its reason in words, for ``/api/resources/events``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

from llmos.errors import InvalidRequest
from llmos.scheduler.birth_death import load_aware_wait


@dataclass(frozen=True)
class ModelLoad:
    """One model's load as its replicas measure it."""

    arrival_rate: float
    """Requests per second to the model, all replicas together."""
    rates: tuple[float, ...]
    """One replica's total departure rates with 1 … slots requests in service (requests/s);
    empty until a replica has measured its service curve."""
    scv: float = 1.0
    """Squared coefficient of variation of the steps a request holds a slot."""
    queued: int = 0

    def predicted_wait(self, replicas: int) -> float | None:
        """Mean queue wait (s) with the load spread over ``replicas``; inf when saturated, None
        while nothing is measured."""
        if replicas < 1:
            return math.inf
        if not self.rates:
            return None
        return load_aware_wait(self.arrival_rate / replicas, self.rates, self.scv)


@dataclass(frozen=True)
class ScaleDecision:
    model: str
    action: Literal["up", "down"]
    replicas: int
    """The replica count after the decision."""
    reason: str


class Autoscaler:
    """Replicas between ``min_replicas`` and ``max_replicas`` per model; see the module docstring."""

    def __init__(
        self,
        *,
        min_replicas: int,
        max_replicas: int,
        target_wait_s: float,
        quiet_period_s: float,
        clock: Callable[[], float],
        up_cooldown_s: float = 10.0,
        down_fraction: float = 0.5,
    ) -> None:
        if not 1 <= min_replicas <= max_replicas:
            raise InvalidRequest("autoscaler: need 1 <= min_replicas <= max_replicas")
        if target_wait_s <= 0 or quiet_period_s < 0 or up_cooldown_s < 0 or not 0 < down_fraction <= 1:
            raise InvalidRequest("autoscaler: target_wait_s > 0, quiet_period_s >= 0, 0 < down_fraction <= 1")
        self.min_replicas = min_replicas
        self.max_replicas = max_replicas
        self.target_wait_s = target_wait_s
        self.quiet_period_s = quiet_period_s
        self.up_cooldown_s = up_cooldown_s
        self.down_fraction = down_fraction
        self._clock = clock
        self._quiet_since: dict[str, float] = {}
        self._last_up: dict[str, float] = {}

    @property
    def enabled(self) -> bool:
        return self.max_replicas > self.min_replicas

    def decide(self, model: str, replicas: int, load: ModelLoad, *, has_room: bool) -> ScaleDecision | None:
        """What to do for ``model`` now (None: nothing). A query, apart from the timers it keeps."""
        now = self._clock()
        if replicas < self.min_replicas:
            self._quiet_since.pop(model, None)
            if not has_room:
                return None
            return ScaleDecision(
                model,
                "up",
                replicas + 1,
                f"{replicas} replicas run, fewer than the minimum {self.min_replicas}",
            )
        wait = load.predicted_wait(replicas)
        if wait is None:
            self._quiet_since.pop(model, None)
            return None
        target = self.target_wait_s
        if wait > target:
            self._quiet_since.pop(model, None)
            if replicas >= self.max_replicas or not has_room:
                return None
            if now - self._last_up.get(model, -math.inf) < self.up_cooldown_s:
                return None
            self._last_up[model] = now
            want = self.needed(load, replicas)
            fits = load.predicted_wait(want)
            return ScaleDecision(
                model,
                "up",
                want,
                f"predicted queue wait {_fmt(wait)} with {replicas} replica{'s' if replicas != 1 else ''} "
                f"at {load.arrival_rate:.2f} req/s is above the target {target:g} s; "
                + (
                    f"{want} replicas are predicted to wait {_fmt(fits)}"
                    if fits is not None and fits <= target
                    else f"{want} is the maximum"
                ),
            )
        if replicas <= self.min_replicas:
            self._quiet_since.pop(model, None)
            return None
        fewer = load.predicted_wait(replicas - 1)
        if fewer is None or fewer > target * self.down_fraction or load.queued > 0:
            self._quiet_since.pop(model, None)
            return None
        since = self._quiet_since.setdefault(model, now)
        if now - since < self.quiet_period_s:
            return None
        del self._quiet_since[model]
        return ScaleDecision(
            model,
            "down",
            replicas - 1,
            f"{replicas - 1} replicas would keep the predicted wait at {_fmt(fewer)} "
            f"(under {self.down_fraction:g} x the target {target:g} s) for {self.quiet_period_s:g} s "
            f"at {load.arrival_rate:.2f} req/s",
        )

    def needed(self, load: ModelLoad, replicas: int) -> int:
        """The fewest replicas, more than ``replicas`` and at most the maximum, that the model
        predicts keep the wait under the target (the maximum if none does)."""
        for n in range(replicas + 1, self.max_replicas + 1):
            wait = load.predicted_wait(n)
            if wait is not None and wait <= self.target_wait_s:
                return n
        return self.max_replicas

    def forget(self, model: str) -> None:
        self._quiet_since.pop(model, None)
        self._last_up.pop(model, None)


def replica_rates(step_time_s: Sequence[float], steps_per_request: float | None) -> tuple[float, ...]:
    """Departure rates μ_k = k / (steps per request × step time with k in the batch), as
    :meth:`llmos.scheduler.service_curve.ServiceCurve.rates` computes them, from published stats."""
    if not step_time_s or not steps_per_request or steps_per_request <= 0:
        return ()
    if any(t <= 0 for t in step_time_s):
        return ()
    return tuple(k / (steps_per_request * step_time_s[k - 1]) for k in range(1, len(step_time_s) + 1))


def _fmt(seconds: float) -> str:
    return "unbounded (saturated)" if math.isinf(seconds) else f"{seconds:.2f} s"
