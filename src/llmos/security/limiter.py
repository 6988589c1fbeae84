"""Rate limits held in memory: requests and tokens per sliding minute, concurrent requests.

Each subject (a tenant, a key) has its own windows. :meth:`Limiter.admit` checks every subject
of a request against its quota and, only if all pass, counts the request in each (no partial
charges); :meth:`Admission.finish` gives back the concurrency slot and charges the tokens the
request really used. Time comes from an injected clock, so tests step it instead of sleeping.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from llmos.errors import RateLimited
from llmos.security.types import Quota

WINDOW_S = 60.0


@dataclass
class _Windows:
    requests: deque[float] = field(default_factory=deque)
    tokens: deque[tuple[float, int]] = field(default_factory=deque)
    token_sum: int = 0
    in_flight: int = 0

    def trim(self, now: float) -> None:
        start = now - WINDOW_S
        while self.requests and self.requests[0] <= start:
            self.requests.popleft()
        while self.tokens and self.tokens[0][0] <= start:
            self.token_sum -= self.tokens.popleft()[1]

    @property
    def idle(self) -> bool:
        return not self.requests and not self.tokens and self.in_flight == 0


@dataclass(frozen=True)
class Subject:
    """Who a limit applies to: ``("tenant", name)`` or ``("key", id)``, and its quota."""

    kind: str
    name: str
    quota: Quota

    @property
    def label(self) -> str:
        return f"{self.kind} {self.name!r}" if self.kind == "tenant" else "this API key"


class Admission:
    """One admitted request's hold on its subjects' windows; :meth:`finish` exactly once."""

    def __init__(self, limiter: Limiter, subjects: Sequence[Subject]) -> None:
        self._limiter = limiter
        self.subjects = tuple(subjects)
        self._done = False

    def finish(self, tokens: int) -> None:
        """Release the concurrency slot and charge ``tokens`` to the per-minute windows. Idempotent."""
        if self._done:
            return
        self._done = True
        self._limiter._finish(self.subjects, tokens)


class Limiter:
    """Sliding one-minute windows per subject, safe to use from several threads."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._windows: dict[tuple[str, str], _Windows] = {}

    def admit(self, subjects: Sequence[Subject]) -> Admission:
        """Count a new request for every subject, or raise RateLimited (with Retry-After) and count none."""
        with self._lock:
            now = self._clock()
            for s in subjects:
                w = self._window(s)
                w.trim(now)
                self._check(s, w, now)
            for s in subjects:
                w = self._window(s)
                w.requests.append(now)
                w.in_flight += 1
            return Admission(self, subjects)

    def in_flight(self, kind: str, name: str) -> int:
        with self._lock:
            w = self._windows.get((kind, name))
            return w.in_flight if w else 0

    def _window(self, s: Subject) -> _Windows:
        return self._windows.setdefault((s.kind, s.name), _Windows())

    @staticmethod
    def _check(s: Subject, w: _Windows, now: float) -> None:
        q = s.quota
        if q.concurrent_requests is not None and w.in_flight >= q.concurrent_requests:
            raise RateLimited(
                f"{s.label} has {w.in_flight} requests running; its limit is {q.concurrent_requests} "
                "concurrent requests",
                retry_after=1.0,
            )
        if q.requests_per_minute is not None and len(w.requests) >= q.requests_per_minute:
            oldest = w.requests[len(w.requests) - q.requests_per_minute]
            raise RateLimited(
                f"{s.label} is over its limit of {q.requests_per_minute} requests per minute",
                retry_after=max(0.001, oldest + WINDOW_S - now),
            )
        if q.tokens_per_minute is not None and w.token_sum >= q.tokens_per_minute:
            # Wait until enough of the window's tokens age out to bring it under the limit.
            excess = w.token_sum - q.tokens_per_minute
            freed, at = 0, now
            for t, n in w.tokens:
                freed += n
                at = t
                if freed > excess:
                    break
            raise RateLimited(
                f"{s.label} is over its limit of {q.tokens_per_minute} tokens per minute",
                retry_after=max(0.001, at + WINDOW_S - now),
            )

    def _finish(self, subjects: Sequence[Subject], tokens: int) -> None:
        with self._lock:
            now = self._clock()
            for s in subjects:
                key = (s.kind, s.name)
                w = self._windows.get(key)
                if w is None:
                    continue
                w.in_flight = max(0, w.in_flight - 1)
                if tokens > 0:
                    w.tokens.append((now, tokens))
                    w.token_sum += tokens
                w.trim(now)
                if w.idle:
                    del self._windows[key]
