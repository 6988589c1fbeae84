"""The security service: who is calling, what they may do, how much, and what they did.

One :class:`Security` per kernel (``kernel.security``). It owns the tenants and keys in the
database, the in-memory rate windows, the scheduler's live tenant weights, usage rows and the
audit log. Every check reads the database afresh, so a revoked key, an expiry or a changed
limit takes effect on the very next request.
"""

from __future__ import annotations

import enum
import hmac
import logging
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from llmos.config import Config
from llmos.domain.tenancy import (
    DEFAULT_PLAN,
    USAGE_GROUPS,
    ApiKey,
    AuditEvent,
    Quota,
    Tenant,
    UsageRecord,
    UsageSummary,
    check_urgency,
    check_weight,
    plan_weight,
)
from llmos.errors import InvalidRequest, NotFound, Unauthorized
from llmos.security.delegation import parent_chain
from llmos.security.key_admin import KeyAdmin
from llmos.security.keys import display_prefix, hash_key, looks_like_key, matches
from llmos.security.limiter import Admission, BudgetView, Limiter, Subject
from llmos.security.periods import period_end, period_start
from llmos.security.principal import Principal, anonymous
from llmos.storage.db import Database
from llmos.storage.limits import LimitsRepository, UsageQuery
from llmos.storage.security import SecurityRepository

log = logging.getLogger(__name__)

TENANT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "::1", "localhost", "ip6-localhost"})
TOUCH_INTERVAL = timedelta(seconds=60)
"""``last_used_at`` is written at most this often per key (not one write per request)."""
ENV_ADMIN_ID = "env-admin"


class _Keep(enum.Enum):
    KEEP = "keep"


KEEP: Final = _Keep.KEEP
"""For optional updates: leave the value as it is (``None`` means "unset it")."""


def is_loopback(host: str) -> bool:
    host = host.strip().strip("[]").lower()
    return host in LOOPBACK_HOSTS or host.startswith("127.")


def auth_required(config: Config) -> bool:
    """``LLMOS_AUTH``: ``required``, ``off``, or ``auto`` (required unless bound to loopback only)."""
    if config.auth == "required":
        return True
    if config.auth == "off":
        return False
    return not is_loopback(config.host)


class TenantWeights(dict[str, float]):
    """The fair-share scheduler's weights by tenant, kept current by :class:`Security`.

    The kernel watches it and sends every change to each model's engine core, so a tenant's
    stored weight (set by its plan or explicitly) applies from the core's next step, without a
    reload. Watchers run on the thread that made the change and must return quickly.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._watchers: list[Callable[[Mapping[str, float]], None]] = []

    def watch(self, watcher: Callable[[Mapping[str, float]], None]) -> None:
        """Call ``watcher`` with the weights after each change of a tenant's weight."""
        self._watchers.append(watcher)

    def __setitem__(self, tenant: str, weight: float) -> None:
        changed = self.get(tenant) != weight
        super().__setitem__(tenant, weight)
        if changed:
            for watcher in list(self._watchers):
                watcher(dict(self))


@dataclass
class Grant:
    """An admitted request. ``max_tokens``: the tightest per-request cap, or None.

    Call :meth:`finish` once the request ends and its usage is recorded (it frees the
    concurrency slot and the budget reservation, and charges tokens).
    """

    admission: Admission
    max_tokens: int | None
    completion_allowance: int = 0
    """The most tokens one choice may generate, as reserved against a budget."""
    urgency_ceiling: int | None = None
    """The highest urgency the caller's requests run at (its tenant's); None: no ceiling (admins)."""

    @property
    def reserved(self) -> int:
        """Tokens reserved against a budget (0 when no budget applies)."""
        return self.admission.reserved

    def refine(self, prompt_tokens: int, choices: int) -> None:
        """Narrow the budget reservation once the prompt is tokenized: its exact tokens plus
        ``choices`` times the completion allowance."""
        self.admission.reserve(prompt_tokens + max(1, choices) * self.completion_allowance)

    def finish(self, tokens: int) -> None:
        self.admission.finish(tokens)


class Security(KeyAdmin):
    """Tenants, keys, scopes, limits, usage and audit over one database (opened lazily)."""

    def __init__(
        self,
        config: Config,
        database: Database | Callable[[], Database],
        *,
        clock: Callable[[], float] = time.time,
        weights: TenantWeights | None = None,
    ) -> None:
        self.config = config
        self._database = database
        self._store: SecurityRepository | None = None
        self._clock = clock
        self.limiter = Limiter(clock, lambda: LimitsRepository(self._db()))
        self.weights = weights if weights is not None else TenantWeights(config.scheduler.tenant_weights)
        self._touched: dict[str, datetime] = {}

    # ---- basics --------------------------------------------------------------------------

    def _db(self) -> Database:
        return self._database if isinstance(self._database, Database) else self._database()

    @property
    def store(self) -> SecurityRepository:
        if self._store is None:
            self._store = SecurityRepository(self._db())
        return self._store

    @property
    def anonymous_tenant(self) -> str:
        return self.config.anonymous_tenant

    @property
    def auth_required(self) -> bool:
        return auth_required(self.config)

    def now(self) -> datetime:
        return datetime.fromtimestamp(self._clock(), UTC)

    def describe(self) -> str:
        """One line for the server's start: whether keys are required, and why."""
        if self.auth_required:
            why = "LLMOS_AUTH=required" if self.config.auth == "required" else f"bound to {self.config.host}"
            return f"API keys required ({why}); create one with 'llmos keys create --admin'"
        why = "LLMOS_AUTH=off" if self.config.auth == "off" else "bound to loopback only"
        return f"API keys optional ({why}); anonymous callers act as tenant {self.config.anonymous_tenant!r}"

    # ---- authentication ------------------------------------------------------------------

    def authenticate(self, token: str | None, *, tenant: str | None = None) -> Principal:
        """The caller holding ``token`` (a bearer secret, or None).

        ``tenant`` (the ``X-LLMOS-Tenant`` header) picks the tenant only for anonymous use or
        an admin key. Raises Unauthorized for a missing key where auth is required, and for an
        unknown, revoked or expired key.
        """
        token = (token or "").strip() or None
        principal: Principal | None = None
        if token is not None and self.config.admin_key and self._is_admin_key(token):
            principal = Principal(
                tenant=self.config.anonymous_tenant,
                key_id=ENV_ADMIN_ID,
                key_prefix=display_prefix(self.config.admin_key),
            )
        elif token is not None and looks_like_key(token):
            principal = self._verify(token)
        elif token is not None and self.auth_required:
            raise Unauthorized("invalid API key; llmos keys look like sk-llmos-…")
        elif self.auth_required:
            raise Unauthorized(
                "missing API key: send 'Authorization: Bearer sk-llmos-…' (create a key with "
                "'llmos keys create')"
            )
        if principal is None:
            return anonymous(_tenant_name(tenant) if tenant else self.config.anonymous_tenant)
        if tenant and principal.is_admin and tenant != principal.tenant:
            # An admin key acts for a tenant that exists: usage and metrics never grow a
            # tenant nobody made.
            return replace(principal, tenant=self._existing_tenant(_tenant_name(tenant)).name)
        return principal

    def acting_for_user(self, principal: Principal, user: str) -> Principal:
        """``principal`` acting for the tenant OpenAI's ``user`` field names, if it is an
        anonymous or admin caller and that tenant exists; else ``principal`` unchanged (``user``
        is then an end-user's label, which must not invent tenants)."""
        if not (principal.is_anonymous or principal.is_admin) or user == principal.tenant:
            return principal
        if not TENANT_NAME.match(user):
            return principal
        found = self.tenant(user)
        return replace(principal, tenant=found.name) if found is not None else principal

    def _is_admin_key(self, token: str) -> bool:
        admin = self.config.admin_key or ""
        return hmac.compare_digest(hash_key(token), hash_key(admin))

    def _verify(self, token: str) -> Principal:
        found: ApiKey | None = None
        for candidate in self.store.keys_with_prefix(display_prefix(token)):
            if matches(token, candidate.hash):
                found = candidate.key
        if found is None:
            raise Unauthorized("invalid API key")
        now = self.now()
        if found.revoked_at is not None:
            raise Unauthorized(f"the API key {found.prefix}… was revoked")
        if found.expires_at is not None and now >= found.expires_at:
            raise Unauthorized(f"the API key {found.prefix}… expired at {found.expires_at.isoformat()}")
        parents = parent_chain(found, self.store.get_key, now)
        last = self._touched.get(found.id) or found.last_used_at
        if last is None or now - last >= TOUCH_INTERVAL:
            self._touched[found.id] = now
            self.store.touch_key(found.id, now)
        return Principal(
            tenant=found.tenant,
            scopes=frozenset(found.scopes),
            model_patterns=found.models or ("*",),
            key_id=found.id,
            key_prefix=found.prefix,
            key_limits=found.limits,
            parent_keys=parents,
        )

    # ---- tenants -------------------------------------------------------------------------

    def tenant(self, name: str) -> Tenant | None:
        """The stored tenant (its weight is refreshed in the scheduler's weights), or None."""
        t = self.store.get_tenant(name)
        if t is not None:
            self.weights[t.name] = t.weight
        return t

    def list_tenants(self, actor: Principal) -> list[Tenant]:
        actor.require("admin")
        return self.store.list_tenants()

    def create_tenant(
        self,
        actor: Principal,
        name: str,
        *,
        plan: str | None = None,
        weight: float | None = None,
        limits: Mapping[str, Any] | None = None,
        store_prompts: bool = False,
        max_urgency: int | None = None,
    ) -> Tenant:
        """Create a tenant (admin). Its weight and urgency ceiling are the plan's unless given.
        Raises Conflict if it exists."""
        actor.require("admin")
        plan = plan or DEFAULT_PLAN
        w = check_weight(weight) if weight is not None else plan_weight(plan)
        plan_weight(plan)
        t = Tenant(
            name=_tenant_name(name),
            plan=plan,
            weight=w,
            limits=Quota.from_json(limits),
            store_prompts=store_prompts,
            created_at=self.now(),
            max_urgency=check_urgency(max_urgency) if max_urgency is not None else None,
        )
        t = self.store.add_tenant(t)
        self.weights[t.name] = t.weight
        detail = {"plan": plan, "weight": w, "limits": _set(t.limits), "max_urgency": t.urgency_ceiling}
        self.audit(actor, "tenant.create", t.name, detail)
        return t

    def update_tenant(
        self,
        actor: Principal,
        name: str,
        *,
        plan: str | None = None,
        weight: float | None = None,
        limits: Mapping[str, Any] | None = None,
        store_prompts: bool | None = None,
        max_urgency: int | _Keep | None = KEEP,
    ) -> Tenant:
        """Change a tenant's plan, weight, limits (merged; a None value removes a limit), urgency
        ceiling (None: back to the plan's) or flags."""
        actor.require("admin")
        t = self._existing_tenant(name)
        changes: dict[str, Any] = {}
        if max_urgency is not KEEP:
            changes["max_urgency"] = check_urgency(max_urgency) if max_urgency is not None else None
        if plan is not None:
            changes["plan"] = plan
            changes["weight"] = plan_weight(plan)
        if weight is not None:
            changes["weight"] = check_weight(weight)
        if limits is not None:
            changes["limits"] = t.limits.updated(limits)
        if store_prompts is not None:
            changes["store_prompts"] = store_prompts
        updated = replace(t, **changes)
        self.store.save_tenant(updated)
        self.weights[updated.name] = updated.weight
        detail: dict[str, Any] = {k: v for k, v in changes.items() if k != "limits"}
        if limits is not None:
            detail["limits"] = dict(limits)
        action = "tenant.limits" if limits is not None else "tenant.update"
        self.audit(actor, action, updated.name, detail)
        return updated

    def ensure_tenant(self, name: str) -> Tenant:
        """The tenant ``name``, created with the default plan if missing (no audit: bootstrap)."""
        existing = self.tenant(name)
        if existing is not None:
            return existing
        t = Tenant(name=_tenant_name(name), plan=DEFAULT_PLAN, weight=plan_weight(DEFAULT_PLAN))
        try:
            return self.store.add_tenant(replace(t, created_at=self.now()))
        except Exception:  # created meanwhile by another process
            found = self.store.get_tenant(name)
            if found is None:
                raise
            return found

    def _existing_tenant(self, name: str) -> Tenant:
        t = self.tenant(name)
        if t is None:
            raise NotFound(f"tenant {name!r} not found; create it with 'llmos tenants create {name}'")
        return t

    # ---- limits --------------------------------------------------------------------------

    def admit(
        self,
        principal: Principal,
        *,
        max_tokens: int | None = None,
        estimate: Callable[[int], int] | None = None,
        completion_allowance: int | None = None,
    ) -> Grant:
        """Admit one request of ``principal`` against its tenant's and key's limits.

        Under a token budget the request reserves ``estimate(allowance)`` tokens (an upper bound
        of what it may use, given the most tokens one choice may generate: ``max_tokens``, else
        the per-request cap, else ``completion_allowance``, else the server's ``max_tokens``) until
        it ends; ``estimate`` is only called when a budget applies.

        Raises InvalidRequest when ``max_tokens`` is over a per-request cap, BudgetExhausted
        when a token budget is spent (retrying will not help before the period ends), and
        RateLimited (with ``retry_after``) when over a rate or the concurrency limit, or while
        running requests hold the rest of a budget.
        """
        t = self.tenant(principal.tenant)
        subjects = [Subject("tenant", principal.tenant, t.limits if t is not None else Quota())]
        if principal.key_id is not None:
            subjects.append(Subject("key", principal.key_id, principal.key_limits))
        subjects.extend(
            Subject("key", p.id, p.limits, title="the API key that made this key")
            for p in principal.parent_keys
        )
        caps = [
            (s, s.quota.max_tokens_per_request)
            for s in subjects
            if s.quota.max_tokens_per_request is not None
        ]
        cap = min((c for _, c in caps), default=None)
        if cap is not None and max_tokens is not None and max_tokens > cap:
            who = next(s for s, c in caps if c == cap).label
            raise InvalidRequest(
                f"max_tokens is {max_tokens}; {who} allows at most {cap} tokens per request",
                param="max_tokens",
            )
        now = self.now()
        budgets: dict[Subject, BudgetView] = {}
        for s in subjects:
            budget = s.quota.token_budget
            if budget is None:
                continue
            start = period_start(now, s.quota.budget_period)
            end = period_end(now, s.quota.budget_period)
            usage = (
                UsageQuery(start, tenant=s.name)
                if s.kind == "tenant"  # a key's budget covers the keys made from it
                else UsageQuery(start, key_ids=tuple(self.store.key_family(s.name)))
            )
            budgets[s] = BudgetView(budget, usage, s.quota.budget_period, end, (end - now).total_seconds())
        allowance = max_tokens or cap or completion_allowance or self.config.limits.max_tokens
        reserve = 0
        if budgets:
            reserve = estimate(allowance) if estimate is not None else allowance
        admission = self.limiter.admit(subjects, budgets=budgets, reserve=reserve)
        ceiling = None
        if not principal.is_admin:
            ceiling = (t or Tenant(principal.tenant)).urgency_ceiling
        return Grant(admission, max_tokens=cap, completion_allowance=allowance, urgency_ceiling=ceiling)

    # ---- usage and audit -----------------------------------------------------------------

    def record_usage(self, record: UsageRecord) -> None:
        """Store one request's usage row (never a prompt body)."""
        self.store.add_usage(record)

    def usage(
        self,
        actor: Principal,
        group_by: Sequence[str] = ("tenant",),
        *,
        tenant: str | None = None,
        model: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> list[UsageSummary]:
        """Usage summed by ``group_by``. Non-admins see their own tenant only (another is NotFound)."""
        bad = [g for g in group_by if g not in USAGE_GROUPS]
        if bad:
            raise InvalidRequest(
                f"cannot group usage by {', '.join(bad)}; expected {', '.join(USAGE_GROUPS)}",
                param="group_by",
            )
        if not actor.is_admin:
            if tenant is not None and tenant != actor.tenant:
                raise NotFound(f"tenant {tenant!r} not found")
            tenant = actor.tenant
        return self.store.summarize(
            list(dict.fromkeys(group_by)), tenant=tenant, model=model, since=since, until=until
        )

    def audit(
        self,
        actor: Principal,
        action: str,
        target: str,
        detail: Mapping[str, Any] | None = None,
        *,
        tenant: str | None = None,
    ) -> None:
        """Append an audit event (who, what, on what, when). Details must hold no secret."""
        event = AuditEvent(
            time=self.now(),
            actor=actor.label,
            action=action,
            target=target,
            detail=dict(detail or {}),
            tenant=tenant if tenant is not None else actor.tenant,
        )
        self.store.add_audit(event)
        log.info("audit: %s %s %s", event.actor, action, target)

    def audit_events(
        self,
        actor: Principal,
        *,
        limit: int = 100,
        action: str | None = None,
        tenant: str | None = None,
        since: datetime | None = None,
    ) -> list[AuditEvent]:
        """The newest audit events first (admin only)."""
        actor.require("admin")
        return self.store.list_audit(limit=limit, action=action, tenant=tenant, since=since)


def local_admin(config: Config) -> Principal:
    """The actor of CLI commands run directly on the database (no server): every scope."""
    return Principal(tenant=config.anonymous_tenant, key_id="local-cli", key_prefix="local-cli")


def _tenant_name(name: str) -> str:
    if not TENANT_NAME.match(name):
        raise InvalidRequest(
            "a tenant name is 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit",
            param="tenant",
        )
    return name


def _set(q: Quota) -> dict[str, Any]:
    return {k: v for k, v in q.to_json().items() if v is not None}
