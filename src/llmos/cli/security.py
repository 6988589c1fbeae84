"""``llmos tenants ...``, ``llmos keys ...``, ``llmos usage``, ``llmos whoami``.

Through the running server (the SDK) when one answers at ``LLMOS_BASE_URL``; with no server, on
the database directly (:class:`LocalSecurity`), so the first admin key can be made before any
key exists: ``llmos keys create --admin``. When a server answers 401 to that command and no
``LLMOS_API_KEY`` is set, the key is made on the local database too (whoever can write the
database owns the server anyway).
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Annotated, Any, ParamSpec, Protocol, TypeVar

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from llmos.cli.errors import handle_errors
from llmos.cli.runtime import reachable_client
from llmos.errors import InvalidRequest

if TYPE_CHECKING:
    from llmos.config import Config
    from llmos.domain import tenancy as dom
    from llmos.sdk import Client
    from llmos.sdk.security import ApiKey, Tenant, UsageRow

out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)

P = ParamSpec("P")
R = TypeVar("R")


class Backend(Protocol):
    """What the commands need: the server's API (through the SDK) or the local database."""

    def tenants_list(self) -> list[Tenant]: ...
    def tenants_create(
        self,
        name: str,
        plan: str | None,
        weight: float | None,
        limits: Mapping[str, Any],
        max_urgency: int | None = None,
    ) -> Tenant: ...
    def tenants_update(
        self,
        name: str,
        plan: str | None,
        weight: float | None,
        limits: Mapping[str, Any],
        max_urgency: int | None = None,
    ) -> Tenant: ...
    def keys_create(
        self,
        tenant: str | None,
        name: str,
        scopes: list[str] | None,
        models: list[str] | None,
        expires_in: int | None,
        limits: Mapping[str, Any],
        admin: bool,
    ) -> ApiKey: ...
    def keys_list(self, tenant: str | None) -> list[ApiKey]: ...
    def keys_revoke(self, key_id: str) -> ApiKey: ...
    def keys_update(self, key_id: str, limits: Mapping[str, Any]) -> ApiKey: ...
    def usage(self, group_by: list[str], tenant: str | None, since: date | None) -> list[UsageRow]: ...


class RemoteSecurity:
    """The commands' backend on a running server."""

    def __init__(self, client: Client) -> None:
        self.s = client.security

    def tenants_list(self) -> list[Tenant]:
        return self.s.tenants.list()

    def tenants_create(
        self,
        name: str,
        plan: str | None,
        weight: float | None,
        limits: Mapping[str, Any],
        max_urgency: int | None = None,
    ) -> Tenant:
        return self.s.tenants.create(
            name, plan=plan, weight=weight, limits=limits or None, max_urgency=max_urgency
        )

    def tenants_update(
        self,
        name: str,
        plan: str | None,
        weight: float | None,
        limits: Mapping[str, Any],
        max_urgency: int | None = None,
    ) -> Tenant:
        return self.s.tenants.update(
            name, plan=plan, weight=weight, limits=limits or None, max_urgency=max_urgency
        )

    def keys_create(
        self,
        tenant: str | None,
        name: str,
        scopes: list[str] | None,
        models: list[str] | None,
        expires_in: int | None,
        limits: Mapping[str, Any],
        admin: bool,
    ) -> ApiKey:
        return self.s.keys.create(
            tenant=tenant,
            name=name,
            scopes=scopes,
            models=models,
            expires_in=expires_in,
            limits=limits or None,
            admin=admin,
        )

    def keys_list(self, tenant: str | None) -> list[ApiKey]:
        return self.s.keys.list(tenant=tenant)

    def keys_revoke(self, key_id: str) -> ApiKey:
        return self.s.keys.revoke(key_id)

    def keys_update(self, key_id: str, limits: Mapping[str, Any]) -> ApiKey:
        return self.s.keys.update(key_id, limits=limits)

    def usage(self, group_by: list[str], tenant: str | None, since: date | None) -> list[UsageRow]:
        return self.s.usage(group_by, tenant=tenant, since=since)


def _tenant(t: dom.Tenant) -> Tenant:
    from llmos.sdk.security import Tenant

    return Tenant(
        name=t.name,
        plan=t.plan,
        weight=t.weight,
        limits=t.limits.to_json(),
        store_prompts=t.store_prompts,
        created_at=t.created_at.isoformat() if t.created_at else None,
        max_urgency=t.urgency_ceiling,
    )


def _iso(d: datetime | None) -> str | None:
    return d.isoformat() if d else None


def _key(k: dom.ApiKey, secret: str | None = None) -> ApiKey:
    from llmos.sdk.security import ApiKey

    return ApiKey(
        id=k.id,
        prefix=k.prefix,
        tenant=k.tenant,
        name=k.name,
        scopes=k.scopes,
        models=k.models,
        limits=k.limits.to_json(),
        created_at=_iso(k.created_at),
        expires_at=_iso(k.expires_at),
        revoked_at=_iso(k.revoked_at),
        last_used_at=_iso(k.last_used_at),
        key=secret,
        parent=k.parent_id,
    )


class LocalSecurity:
    """The commands' backend on the local database (no server), acting as a local admin."""

    def __init__(self, config: Config) -> None:
        # The database and the security service are imported only when no server answers.
        from llmos.security import service as svc
        from llmos.storage.db import open_database

        self.config = config
        self.security = svc.Security(config, open_database(config))
        self.actor = svc.local_admin(config)

    def tenants_list(self) -> list[Tenant]:
        return [_tenant(t) for t in self.security.list_tenants(self.actor)]

    def tenants_create(
        self,
        name: str,
        plan: str | None,
        weight: float | None,
        limits: Mapping[str, Any],
        max_urgency: int | None = None,
    ) -> Tenant:
        t = self.security.create_tenant(
            self.actor, name, plan=plan, weight=weight, limits=limits, max_urgency=max_urgency
        )
        return _tenant(t)

    def tenants_update(
        self,
        name: str,
        plan: str | None,
        weight: float | None,
        limits: Mapping[str, Any],
        max_urgency: int | None = None,
    ) -> Tenant:
        from llmos.security.service import KEEP

        t = self.security.update_tenant(
            self.actor,
            name,
            plan=plan,
            weight=weight,
            limits=limits or None,
            max_urgency=max_urgency if max_urgency is not None else KEEP,
        )
        return _tenant(t)

    def keys_create(
        self,
        tenant: str | None,
        name: str,
        scopes: list[str] | None,
        models: list[str] | None,
        expires_in: int | None,
        limits: Mapping[str, Any],
        admin: bool,
    ) -> ApiKey:
        from datetime import timedelta

        expires = self.security.now() + timedelta(seconds=expires_in) if expires_in else None
        key, secret = self.security.create_key(
            self.actor,
            tenant=tenant,
            name=name,
            scopes=scopes,
            models=models,
            expires_at=expires,
            limits=limits,
            admin=admin,
        )
        return _key(key, secret)

    def keys_list(self, tenant: str | None) -> list[ApiKey]:
        return [_key(k) for k in self.security.list_keys(self.actor, tenant)]

    def keys_revoke(self, key_id: str) -> ApiKey:
        return _key(self.security.revoke_key(self.actor, key_id))

    def keys_update(self, key_id: str, limits: Mapping[str, Any]) -> ApiKey:
        return _key(self.security.update_key(self.actor, key_id, limits=limits))

    def usage(self, group_by: list[str], tenant: str | None, since: date | None) -> list[UsageRow]:
        from llmos.sdk.security import UsageRow

        start = datetime.combine(since, datetime.min.time(), tzinfo=UTC) if since else None
        rows = self.security.usage(self.actor, group_by, tenant=tenant, since=start)
        return [UsageRow(**{k: v for k, v in asdict(u).items()}) for u in rows]


def _load_config() -> Config:
    from llmos.config import load_config

    return load_config()


def open_backend() -> Backend:
    """The running server's API when one answers, else the local database."""
    client = reachable_client()
    if client is not None:
        return RemoteSecurity(client)
    return LocalSecurity(_load_config())


backend_opener: Callable[[], Backend] = open_backend
"""How commands reach tenants and keys (tests swap it)."""


# ---- parsing -------------------------------------------------------------------------------

_DURATION = re.compile(r"^\s*(\d+)\s*([smhdwy])\s*$")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400, "y": 365 * 86400}


def parse_expiry(value: str | None, now: datetime | None = None) -> int | None:
    """``30d``, ``12h``, ``90m``, ``1y`` or an ISO date/time → seconds from now. Raises InvalidRequest."""
    if value is None:
        return None
    m = _DURATION.match(value)
    if m:
        seconds = int(m.group(1)) * _UNIT_S[m.group(2)]
    else:
        try:
            when = datetime.fromisoformat(value)
        except ValueError:
            raise InvalidRequest(
                f"--expires {value!r}: give a duration (30d, 12h) or a date (2027-01-31)", param="expires"
            ) from None
        when = when if when.tzinfo else when.replace(tzinfo=UTC)
        seconds = int((when - (now or datetime.now(UTC))).total_seconds())
    if seconds <= 0:
        raise InvalidRequest("--expires must be in the future", param="expires")
    return seconds


def _split(values: Iterable[str] | None) -> list[str] | None:
    if values is None:
        return None
    items = [p.strip() for v in values for p in v.split(",") if p.strip()]
    return items or None


Rpm = Annotated[int | None, typer.Option("--rpm", help="Requests per minute", min=1)]
Tpm = Annotated[int | None, typer.Option("--tpm", help="Tokens per minute", min=1)]
Concurrency = Annotated[int | None, typer.Option("--concurrency", help="Concurrent requests", min=1)]
MaxTokens = Annotated[int | None, typer.Option("--max-tokens", help="Max tokens per request", min=1)]
Budget = Annotated[int | None, typer.Option("--budget", help="Token budget per period", min=1)]
Period = Annotated[str | None, typer.Option("--budget-period", help="day, week or month (default month)")]
Clear = Annotated[
    list[str] | None,
    typer.Option("--clear", help="Remove a limit: rpm, tpm, concurrency, max-tokens, budget"),
]
MaxUrgency = Annotated[
    int | None,
    typer.Option(
        "--max-urgency",
        help="Highest urgency (0-9) the tenant's requests run at; higher asks are lowered "
        "(default: the plan's: free/standard 5, pro 7, enterprise 8)",
        min=0,
        max=9,
    ),
]


def _limits(
    rpm: int | None,
    tpm: int | None,
    concurrency: int | None,
    max_tokens: int | None,
    budget: int | None,
    period: str | None,
    clear: Iterable[str] = (),
) -> dict[str, Any]:
    given = {
        "requests_per_minute": rpm,
        "tokens_per_minute": tpm,
        "concurrent_requests": concurrency,
        "max_tokens_per_request": max_tokens,
        "token_budget": budget,
        "budget_period": period,
    }
    out: dict[str, Any] = {k: v for k, v in given.items() if v is not None}
    aliases = {
        "rpm": "requests_per_minute",
        "tpm": "tokens_per_minute",
        "concurrency": "concurrent_requests",
        "max-tokens": "max_tokens_per_request",
        "budget": "token_budget",
    }
    for name in clear:
        field = aliases.get(name, name.replace("-", "_"))
        if field not in given:
            raise InvalidRequest(f"--clear {name!r}: not a limit (rpm, tpm, concurrency, max-tokens, budget)")
        out[field] = None
    return out


def _show_limits(limits: Mapping[str, Any]) -> str:
    short = {
        "requests_per_minute": "rpm",
        "tokens_per_minute": "tpm",
        "concurrent_requests": "concurrency",
        "max_tokens_per_request": "max-tokens",
        "token_budget": "budget",
    }
    parts = [f"{short[k]}={v}" for k, v in limits.items() if k in short and v is not None]
    if limits.get("token_budget") is not None:
        parts[-1] += f"/{limits.get('budget_period', 'month')}"
    return " ".join(parts) or "unlimited"


# ---- tenants -------------------------------------------------------------------------------

tenants_app = typer.Typer(
    help="Tenants: who shares this server, their plans, weights and limits.", rich_markup_mode=None
)
keys_app = typer.Typer(help="API keys: create (shown once), list, revoke.", rich_markup_mode=None)


def tenants_create(
    name: Annotated[str, typer.Argument(help="Tenant name: letters, digits, '.', '_', '-'")],
    plan: Annotated[
        str | None, typer.Option(help="free, standard, pro or enterprise (sets the weight)")
    ] = None,
    weight: Annotated[float | None, typer.Option(help="Fair-share weight (overrides the plan's)")] = None,
    rpm: Rpm = None,
    tpm: Tpm = None,
    concurrency: Concurrency = None,
    max_tokens: MaxTokens = None,
    budget: Budget = None,
    budget_period: Period = None,
    max_urgency: MaxUrgency = None,
) -> None:
    """Create a tenant."""
    t = backend_opener().tenants_create(
        name, plan, weight, _limits(rpm, tpm, concurrency, max_tokens, budget, budget_period), max_urgency
    )
    out.print(
        f"created tenant {escape(t.name)} (plan {t.plan}, weight {t.weight:g}, "
        f"max urgency {t.max_urgency}; {_show_limits(t.limits)})"
    )


def tenants_list(as_json: Annotated[bool, typer.Option("--json", help="Print JSON")] = False) -> None:
    """List tenants with their plans, weights and limits."""
    tenants = backend_opener().tenants_list()
    if as_json:
        out.print_json(json.dumps([asdict(t) for t in tenants]))
        return
    table = Table(box=None, pad_edge=False)
    for col in ("NAME", "PLAN", "WEIGHT", "LIMITS"):
        table.add_column(col)
    for t in tenants:
        table.add_row(escape(t.name), t.plan, f"{t.weight:g}", _show_limits(t.limits))
    out.print(table)


def tenants_set_limits(
    name: Annotated[str, typer.Argument(help="Tenant name")],
    rpm: Rpm = None,
    tpm: Tpm = None,
    concurrency: Concurrency = None,
    max_tokens: MaxTokens = None,
    budget: Budget = None,
    budget_period: Period = None,
    clear: Clear = None,
    plan: Annotated[str | None, typer.Option(help="A new plan (sets the weight)")] = None,
    weight: Annotated[float | None, typer.Option(help="A new fair-share weight")] = None,
    max_urgency: MaxUrgency = None,
) -> None:
    """Change a tenant's limits (the ones given; others stay), plan, weight or urgency ceiling.
    Applies at once."""
    limits = _limits(rpm, tpm, concurrency, max_tokens, budget, budget_period, clear or ())
    if not limits and plan is None and weight is None and max_urgency is None:
        raise InvalidRequest(
            "nothing to change: give a limit (--rpm, --budget...), --clear, --plan, --weight or --max-urgency"
        )
    t = backend_opener().tenants_update(name, plan, weight, limits, max_urgency)
    out.print(
        f"tenant {escape(t.name)}: plan {t.plan}, weight {t.weight:g}, max urgency {t.max_urgency}; "
        f"{_show_limits(t.limits)}"
    )


# ---- keys ----------------------------------------------------------------------------------


def keys_create(
    tenant: Annotated[str | None, typer.Option(help="The key's tenant (default: the local tenant)")] = None,
    admin: Annotated[bool, typer.Option("--admin", help="An admin key: every scope, every tenant")] = False,
    scopes: Annotated[
        list[str] | None,
        typer.Option(
            help="Scopes (comma list): inference, embeddings, models:read, models:write, fine-tune, "
            "data, keys:write (make and revoke keys bounded by this one), metrics:read"
        ),
    ] = None,
    models: Annotated[
        list[str] | None, typer.Option(help="Model name patterns (comma list), e.g. 'smollm2:*'")
    ] = None,
    expires: Annotated[str | None, typer.Option(help="Expiry: 30d, 12h, 1y or a date (2027-01-31)")] = None,
    name: Annotated[str, typer.Option(help="A label for the key")] = "",
    rpm: Rpm = None,
    tpm: Tpm = None,
    concurrency: Concurrency = None,
    max_tokens: MaxTokens = None,
    budget: Budget = None,
    budget_period: Period = None,
    local: Annotated[
        bool, typer.Option("--local", help="Write to the local database, not the server")
    ] = False,
) -> None:
    """Create an API key and print it (this once: only its hash is kept)."""
    args = (
        tenant,
        name,
        _split(scopes),
        _split(models),
        parse_expiry(expires),
        _limits(rpm, tpm, concurrency, max_tokens, budget, budget_period),
        admin,
    )
    if local:
        key = LocalSecurity(_load_config()).keys_create(*args)
    else:
        from llmos.sdk import AuthenticationError

        backend = backend_opener()
        try:
            key = backend.keys_create(*args)
        except AuthenticationError:
            if not (admin and isinstance(backend, RemoteSecurity) and _load_config().api_key is None):
                raise
            err.print("the server wants a key and none is set: creating the admin key on the local database")
            key = LocalSecurity(_load_config()).keys_create(*args)
    err.print(
        f"created key {key.id} ({key.prefix}…) for tenant {escape(key.tenant)}, "
        f"scopes {', '.join(key.scopes)}; models {', '.join(key.models)}"
        + (f"; expires {key.expires_at}" if key.expires_at else "")
    )
    err.print("[bold]save it now: it is not shown again[/]")
    out.print(key.key or "", markup=False)


def keys_list(
    tenant: Annotated[str | None, typer.Option(help="Only this tenant's keys")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON")] = False,
) -> None:
    """List API keys (prefixes only; secrets are never kept)."""
    keys = backend_opener().keys_list(tenant)
    if as_json:
        out.print_json(json.dumps([asdict(k) for k in keys]))
        return
    named = any(k.name for k in keys)
    cols = ["ID", "PREFIX", "TENANT", *(["NAME"] if named else []), "SCOPES", "MODELS", "EXPIRES", "STATUS"]
    table = Table(box=None, pad_edge=False)
    for col in cols:
        table.add_column(
            col, no_wrap=col != "SCOPES", overflow="fold", min_width=12 if col == "SCOPES" else None
        )
    for k in keys:
        scopes = "admin (all)" if "admin" in k.scopes else ",".join(k.scopes)
        cells = [k.id, k.prefix, escape(k.tenant), *([escape(k.name)] if named else []), scopes]
        cells += [
            escape(",".join(k.models)),
            (k.expires_at or "-")[:10],
            "revoked" if k.revoked_at else "active",
        ]
        table.add_row(*cells)
    out.print(table)


def keys_revoke(
    key_id: Annotated[str, typer.Argument(help="The key's id (key_…), from 'llmos keys list'")],
) -> None:
    """Revoke a key: its next request is refused (401)."""
    k = backend_opener().keys_revoke(key_id)
    out.print(f"revoked {k.id} ({k.prefix}…) of tenant {escape(k.tenant)}")


def keys_set_limits(
    key_id: Annotated[str, typer.Argument(help="The key's id (key_…)")],
    rpm: Rpm = None,
    tpm: Tpm = None,
    concurrency: Concurrency = None,
    max_tokens: MaxTokens = None,
    budget: Budget = None,
    budget_period: Period = None,
    clear: Clear = None,
) -> None:
    """Change one key's limits (the tenant's apply as well). Applies at once."""
    limits = _limits(rpm, tpm, concurrency, max_tokens, budget, budget_period, clear or ())
    if not limits:
        raise InvalidRequest("nothing to change: give a limit (--rpm, --budget...) or --clear")
    k = backend_opener().keys_update(key_id, limits)
    out.print(f"key {k.id} ({k.prefix}…): {_show_limits(k.limits)}")


# ---- usage ---------------------------------------------------------------------------------


USAGE_COUNTS = (
    "requests: every metered request since the database was made (chat, completions, embeddings, tasks), "
    "refused and failed ones included; the console's dashboard counts the server's generations since it started"
)


def usage(
    by: Annotated[
        str, typer.Option("--by", help="Group by: tenant, model, day, key (comma list)")
    ] = "tenant",
    tenant: Annotated[str | None, typer.Option(help="Only this tenant")] = None,
    since: Annotated[str | None, typer.Option(help="From this day (YYYY-MM-DD, UTC)")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON")] = False,
) -> None:
    """Requests, tokens and errors, summed by tenant, model, day or key."""
    groups = [g.strip() for g in by.split(",") if g.strip()]
    try:
        start = date.fromisoformat(since) if since else None
    except ValueError:
        raise InvalidRequest(f"--since {since!r}: give a date like 2026-11-01", param="since") from None
    rows = backend_opener().usage(groups, tenant, start)
    if as_json:
        out.print_json(json.dumps([asdict(r) for r in rows]))
        return
    table = Table(box=None, pad_edge=False)
    for col in [g.upper() for g in groups] + ["REQUESTS", "PROMPT TOKENS", "COMPLETION TOKENS", "ERRORS"]:
        table.add_column(col)
    for r in rows:
        cells = [escape(str(getattr(r, g) or "-")) for g in groups]
        table.add_row(*cells, str(r.requests), str(r.prompt_tokens), str(r.completion_tokens), str(r.errors))
    out.print(table)
    err.print(f"[dim]{USAGE_COUNTS}[/]")


def whoami() -> None:
    """Who the configured key (LLMOS_API_KEY) is on the running server."""
    from llmos.cli.runtime import require_server

    with require_server() as client:
        me = client.security.whoami()
    out.print(
        f"tenant {escape(me.tenant)}; key {me.key_prefix or '(none)'}; scopes {', '.join(me.scopes)}; "
        f"auth {me.auth}"
    )


def _wrapped(fn: Callable[P, R]) -> Callable[P, R]:
    return functools.wraps(fn)(handle_errors(fn))


def register(app: typer.Typer) -> None:
    tenants_app.command("create")(_wrapped(tenants_create))
    tenants_app.command("list")(_wrapped(tenants_list))
    tenants_app.command("set-limits")(_wrapped(tenants_set_limits))
    keys_app.command("create")(_wrapped(keys_create))
    keys_app.command("list")(_wrapped(keys_list))
    keys_app.command("revoke")(_wrapped(keys_revoke))
    keys_app.command("set-limits")(_wrapped(keys_set_limits))
    app.add_typer(tenants_app, name="tenants")
    app.add_typer(keys_app, name="keys")
    app.command("usage")(usage)
    app.command("whoami")(whoami)
