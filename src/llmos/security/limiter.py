"""Rate limits held in memory: requests and tokens per sliding minute, concurrent requests.

Each subject (a tenant, a key) has its own windows. :meth:`Limiter.admit` checks every subject
of a request against its quota and, only if all pass, counts the request in each (no partial
charges); :meth:`Admission.finish` gives back the concurrency slot and charges the tokens the
request really used. Time comes from an injected clock, so tests step it instead of sleeping.

Token budgets are summed from the database, but requests that are still running are not in
it yet. So a request under a budget *reserves* an upper bound of the tokens it may use: a new
request is admitted only while ``used + reserved`` is below the budget, where ``reserved`` is
what the subject's running requests hold (see :class:`BudgetView`). When a request ends, its
real tokens go to the database first and then its reservation is released; the tokens released
meanwhile are counted as "settled" so an admission that read the database just before cannot
miss them. Hence the tokens charged in a period pass the budget by at most what the last
request admitted really used (one request's worth), however many run at once.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from llmos.domain.tenancy import Quota
from llmos.errors import RateLimited

WINDOW_S = 60.0


@dataclass
class _Windows:
    requests: deque[float] = field(default_factory=deque)
    tokens: deque[tuple[float, int]] = field(default_factory=deque)
    token_sum: int = 0
    in_flight: int = 0
    reserved: int = 0
    """Tokens the running requests under a budget may still use (their reservations)."""

    def trim(self, now: float) -> None:
        start = now - WINDOW_S
        while self.requests and self.requests[0] <= start:
            self.requests.popleft()
        while self.tokens and self.tokens[0][0] <= start:
            self.token_sum -= self.tokens.popleft()[1]

    @property
    def idle(self) -> bool:
        return not self.requests and not self.tokens and self.in_flight == 0 and self.reserved == 0


@dataclass(frozen=True)
class Subject:
    """Who a limit applies to: ``("tenant", name)`` or ``("key", id)``, and its quota."""

    kind: str
    name: str
    quota: Quota
    title: str = field(default="", compare=False)
    """How an error names it, when not "tenant 'x'" or "this API key"."""

    @property
    def label(self) -> str:
        if self.title:
            return self.title
        return f"{self.kind} {self.name!r}" if self.kind == "tenant" else "this API key"


@dataclass(frozen=True)
class BudgetView:
    """What admission knows of a budgeted subject: the tokens the database holds for this
    period (``used``), the budget, and the settled count read *before* the database was."""

    used: int
    budget: int
    settled_before: int


class Admission:
    """One admitted request's hold on its subjects' windows; :meth:`finish` exactly once."""

    def __init__(
        self,
        limiter: Limiter,
        subjects: Sequence[Subject],
        budgeted: Sequence[Subject] = (),
        reserved: int = 0,
    ) -> None:
        self._limiter = limiter
        self.subjects = tuple(subjects)
        self.budgeted = tuple(budgeted)
        """The subjects this request holds a budget reservation with."""
        self.reserved = reserved if budgeted else 0
        self._done = False

    def reserve(self, tokens: int) -> None:
        """Change this request's budget reservation to ``tokens`` (e.g. once its prompt is known)."""
        if not self.budgeted or self._done:
            return
        self._limiter._rereserve(self, max(0, tokens))

    def finish(self, tokens: int) -> None:
        """Release the concurrency slot and the reservation, and charge ``tokens`` to the
        per-minute windows. Idempotent. Call it after the tokens are in the database."""
        if self._done:
            return
        self._done = True
        self._limiter._finish(self, tokens)


class Limiter:
    """Sliding one-minute windows per subject, safe to use from several threads."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._windows: dict[tuple[str, str], _Windows] = {}
        self._settled: dict[tuple[str, str], int] = {}
        """Tokens of budgeted requests that ended, per subject, ever (only grows)."""

    def settled(self, subject: Subject) -> int:
        """The subject's settled-token count; read it *before* reading its usage from the database."""
        with self._lock:
            return self._settled.get((subject.kind, subject.name), 0)

    def admit(
        self,
        subjects: Sequence[Subject],
        *,
        budgets: Mapping[Subject, BudgetView] | None = None,
        reserve: int = 0,
    ) -> Admission:
        """Count a new request for every subject, or raise RateLimited (with Retry-After) and count none.

        For each subject in ``budgets``, the request is refused (429, retry soon) while the
        subject's running requests hold the rest of its budget, and otherwise reserves ``reserve``
        tokens of it until :meth:`Admission.finish`.
        """
        budgets = budgets or {}
        with self._lock:
            now = self._clock()
            for s in subjects:
                w = self._window(s)
                w.trim(now)
                self._check(s, w, now)
                view = budgets.get(s)
                if view is not None:
                    self._check_budget(s, w, view)
            for s in subjects:
                w = self._window(s)
                w.requests.append(now)
                w.in_flight += 1
                if s in budgets:
                    w.reserved += reserve
            return Admission(self, subjects, [s for s in subjects if s in budgets], reserve)

    def reserved(self, kind: str, name: str) -> int:
        with self._lock:
            w = self._windows.get((kind, name))
            return w.reserved if w else 0

    def _check_budget(self, s: Subject, w: _Windows, view: BudgetView) -> None:
        # Tokens settled since the database was read may or may not be in ``used``: count them
        # (at worst twice, which only refuses early) rather than risk missing them.
        late = self._settled.get((s.kind, s.name), 0) - view.settled_before
        held = w.reserved + late
        if held > 0 and view.used + held >= view.budget:
            left = max(0, view.budget - view.used)
            raise RateLimited(
                f"the {left} tokens left in the token budget of {s.label} are reserved by its "
                f"{w.in_flight} running requests; retry when they end",
                retry_after=1.0,
            )

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

    def _rereserve(self, admission: Admission, tokens: int) -> None:
        with self._lock:
            for s in admission.budgeted:
                w = self._windows.get((s.kind, s.name))
                if w is not None:
                    w.reserved = max(0, w.reserved - admission.reserved + tokens)
            admission.reserved = tokens

    def _finish(self, admission: Admission, tokens: int) -> None:
        with self._lock:
            now = self._clock()
            for s in admission.budgeted:
                key = (s.kind, s.name)
                self._settled[key] = self._settled.get(key, 0) + max(0, tokens)
                w = self._windows.get(key)
                if w is not None:
                    w.reserved = max(0, w.reserved - admission.reserved)
            for s in admission.subjects:
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
