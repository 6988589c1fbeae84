"""``llmos tenants ...``, ``llmos keys ...``, ``llmos usage``, ``llmos whoami``: through the
running server (the SDK) at ``LLMOS_BASE_URL``. The one exception, the first admin key made
before any server runs or any key exists (``llmos keys create --admin``), is
:mod:`llmos.cli.bootstrap`'s.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Annotated, Any, ParamSpec, TypeVar

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from llmos.cli.errors import handle_errors
from llmos.cli.runtime import configured_base_url, no_server, reachable_client
from llmos.errors import InvalidRequest

if TYPE_CHECKING:
    from llmos.sdk import Client
    from llmos.sdk.security import ApiKey

out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)

P = ParamSpec("P")
R = TypeVar("R")


open_client: Callable[[], Client | None] = reachable_client
"""The running server's client, None when none answers (tests swap it)."""


def _server() -> Client:
    """The running server's client; raises the one-line "start one with 'llmos serve'" error."""
    client = open_client()
    if client is None:
        raise no_server(configured_base_url())
    return client


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
    limits = _limits(rpm, tpm, concurrency, max_tokens, budget, budget_period)
    with _server() as client:
        t = client.security.tenants.create(
            name, plan=plan, weight=weight, limits=limits or None, max_urgency=max_urgency
        )
    out.print(
        f"created tenant {escape(t.name)} (plan {t.plan}, weight {t.weight:g}, "
        f"max urgency {t.max_urgency}; {_show_limits(t.limits)})"
    )


def tenants_list(as_json: Annotated[bool, typer.Option("--json", help="Print JSON")] = False) -> None:
    """List tenants with their plans, weights and limits."""
    with _server() as client:
        tenants = client.security.tenants.list()
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
    with _server() as client:
        t = client.security.tenants.update(
            name, plan=plan, weight=weight, limits=limits or None, max_urgency=max_urgency
        )
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
        bool, typer.Option("--local", help="With --admin: make it on the local database, not the server")
    ] = False,
) -> None:
    """Create an API key and print it (this once: only its hash is kept)."""
    limits = _limits(rpm, tpm, concurrency, max_tokens, budget, budget_period)
    expires_in = parse_expiry(expires)
    if local and not admin:
        raise InvalidRequest("--local makes the first admin key only: add --admin, or start 'llmos serve'")
    client = None if local else open_client()
    if client is None and not admin:
        raise no_server(configured_base_url())
    if client is None:
        key = _bootstrap(name, expires_in, "no server is running" if not local else "")
    else:
        from llmos.sdk import AuthenticationError

        with client:
            try:
                key = client.security.keys.create(
                    tenant=tenant,
                    name=name,
                    scopes=_split(scopes),
                    models=_split(models),
                    expires_in=expires_in,
                    limits=limits or None,
                    admin=admin,
                )
            except AuthenticationError:
                if not admin or _configured_key() is not None:
                    raise
                key = _bootstrap(name, expires_in, "the server wants a key and none is set")
    err.print(
        f"created key {key.id} ({key.prefix}…) for tenant {escape(key.tenant)}, "
        f"scopes {', '.join(key.scopes)}; models {', '.join(key.models)}"
        + (f"; expires {key.expires_at}" if key.expires_at else "")
    )
    err.print("[bold]save it now: it is not shown again[/]")
    out.print(key.key or "", markup=False)


def _configured_key() -> str | None:
    from llmos.config import load_config

    return load_config().api_key


def _bootstrap(name: str, expires_in: int | None, why: str) -> ApiKey:
    from llmos.cli.bootstrap import create_admin_key

    if why:
        err.print(f"{why}: creating the admin key on the local database")
    return create_admin_key(name, expires_in)


def keys_list(
    tenant: Annotated[str | None, typer.Option(help="Only this tenant's keys")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON")] = False,
) -> None:
    """List API keys (prefixes only; secrets are never kept)."""
    with _server() as client:
        keys = client.security.keys.list(tenant=tenant)
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
    with _server() as client:
        k = client.security.keys.revoke(key_id)
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
    with _server() as client:
        k = client.security.keys.update(key_id, limits=limits)
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
    with _server() as client:
        rows = client.security.usage(groups, tenant=tenant, since=start)
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
    with _server() as client:
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
