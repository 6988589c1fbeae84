"""Rate limits shared by every front-end on one database: requests and tokens per sliding
minute, concurrent requests, and token-budget reservations.

Each subject (a tenant, a key) has its own windows, kept in the database
(:class:`llmos.storage.limits.LimitsRepository`) so that two ``llmos serve`` processes on one
PostgreSQL enforce one limit between them; SQLite takes the same path on one host.
:meth:`Limiter.admit` checks every subject of a request against its quota and, only if all
pass, counts the request in each and holds a concurrency slot (no partial charges), all in one
transaction serialized per subject; :meth:`Admission.finish` gives back the slot and charges the
tokens the request really used. Time comes from an injected clock (epoch seconds: front-ends on
several hosts need synchronized clocks), so tests step it instead of sleeping.

Token budgets are summed from the usage rows, but requests that are still running are not in
them yet. So a request under a budget *reserves* an upper bound of the tokens it may use: a new
request is admitted only while ``used + reserved`` is below the budget, where ``reserved`` is
what the subject's running requests hold, on every front-end. When a request ends, its real
tokens go to the database first and then its hold is released (see the storage module for why
that order never lets an admission miss them). Hence the tokens charged in a period pass the
budget by at most what the last request admitted really used (one request's worth), however
many run at once, on however many front-ends.

A hold lasts at most ``lease_s`` (an hour by default): the slots and reservations of a
front-end that died free themselves then.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from llmos.domain.tenancy import Quota
from llmos.errors import BudgetExhausted, RateLimited
from llmos.storage.limits import LimitsRepository, SubjectKey, UsageQuery, WindowState

WINDOW_S = 60.0
LEASE_S = 3600.0


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
    """A budgeted subject's budget, the usage rows that count against it, and when it renews."""

    budget: int
    usage: UsageQuery
    period: str
    renews_at: datetime
    retry_after_s: float
    """Seconds until it renews."""


class Admission:
    """One admitted request's hold on its subjects' windows; :meth:`finish` exactly once."""

    def __init__(
        self,
        limiter: Limiter,
        hold_id: str,
        subjects: Sequence[Subject],
        budgeted: Sequence[Subject] = (),
        reserved: int = 0,
    ) -> None:
        self._limiter = limiter
        self.hold_id = hold_id
        self.subjects = tuple(subjects)
        self.budgeted = tuple(budgeted)
        """The subjects this request holds a budget reservation with."""
        self.reserved = reserved if budgeted else 0
        self._done = False

    def reserve(self, tokens: int) -> None:
        """Change this request's budget reservation to ``tokens`` (e.g. once its prompt is known)."""
        if not self.budgeted or self._done:
            return
        self.reserved = max(0, tokens)
        self._limiter.store.rereserve(self.hold_id, [_key(s) for s in self.budgeted], self.reserved)

    def finish(self, tokens: int) -> None:
        """Release the concurrency slot and the reservation, and charge ``tokens`` to the
        per-minute windows. Idempotent. Call it after the tokens are in the database."""
        if self._done:
            return
        self._done = True
        self._limiter.store.release(
            self.hold_id, [_key(s) for s in self.subjects], now=self._limiter.clock(), tokens=max(0, tokens)
        )


def _key(s: Subject) -> SubjectKey:
    return (s.kind, s.name)


class Limiter:
    """Sliding one-minute windows and budget holds per subject, in the database; safe to use
    from several threads and several processes."""

    def __init__(
        self,
        clock: Callable[[], float],
        store: LimitsRepository | Callable[[], LimitsRepository],
        *,
        lease_s: float = LEASE_S,
    ) -> None:
        self.clock = clock
        self._store = store
        self.lease_s = lease_s

    @property
    def store(self) -> LimitsRepository:
        if not isinstance(self._store, LimitsRepository):
            self._store = self._store()
        return self._store

    def admit(
        self,
        subjects: Sequence[Subject],
        *,
        budgets: Mapping[Subject, BudgetView] | None = None,
        reserve: int = 0,
    ) -> Admission:
        """Count a new request for every subject, or raise RateLimited (with Retry-After) and count none.

        For each subject in ``budgets``: BudgetExhausted once its usage reaches the budget, and
        RateLimited (retry soon) while the running requests of every front-end hold the rest of
        it; otherwise the request reserves ``reserve`` tokens of it until :meth:`Admission.finish`.
        """
        budgets = budgets or {}
        by_key = {_key(s): s for s in subjects}
        views = {_key(s): v for s, v in budgets.items()}
        now = self.clock()

        def check(states: Mapping[SubjectKey, WindowState]) -> None:
            for key, s in by_key.items():
                w = states[key]
                self._check(s, w, now)
                view = views.get(key)
                if view is not None:
                    self._check_budget(s, w, view)

        hold = uuid.uuid4().hex
        self.store.admit(
            list(by_key),
            hold_id=hold,
            now=now,
            window_s=WINDOW_S,
            lease_s=self.lease_s,
            reserve={k: reserve for k in views},
            usage={k: v.usage for k, v in views.items()},
            check=check,
        )
        return Admission(self, hold, subjects, [s for s in subjects if _key(s) in views], reserve)

    def reserved(self, kind: str, name: str) -> int:
        """Tokens the subject's running requests (on every front-end) hold against its budget."""
        return self.store.holds((kind, name), now=self.clock())[1]

    def in_flight(self, kind: str, name: str) -> int:
        """The subject's running requests, on every front-end."""
        return self.store.holds((kind, name), now=self.clock())[0]

    @staticmethod
    def _check_budget(s: Subject, w: WindowState, view: BudgetView) -> None:
        used = w.used or 0
        if used >= view.budget:
            raise BudgetExhausted(
                f"{s.label} has used its token budget ({used} of {view.budget} tokens this "
                f"{view.period}); it renews at {view.renews_at.isoformat()}",
                retry_after=view.retry_after_s,
            )
        if w.reserved > 0 and used + w.reserved >= view.budget:
            raise RateLimited(
                f"the {view.budget - used} tokens left in the token budget of {s.label} are reserved "
                f"by its {w.in_flight} running requests; retry when they end",
                retry_after=1.0,
            )

    @staticmethod
    def _check(s: Subject, w: WindowState, now: float) -> None:
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
        token_sum = w.token_sum
        if q.tokens_per_minute is not None and token_sum >= q.tokens_per_minute:
            # Wait until enough of the window's tokens age out to bring it under the limit.
            excess = token_sum - q.tokens_per_minute
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
