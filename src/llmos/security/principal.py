"""Who is asking: the authenticated identity every route receives.

Routes never look at keys or headers themselves; they get a :class:`Principal` from the
server's auth dependency and ask it :meth:`Principal.require` for the scope their operation
needs. Data that belongs to a tenant is always filtered by ``principal.tenant``.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass, field
from typing import Literal, get_args

from llmos.domain.tenancy import Quota
from llmos.errors import Forbidden

Scope = Literal[
    "inference",
    "embeddings",
    "models:read",
    "models:write",
    "admin",
    "fine-tune",
    "data",
    "keys:write",
    "metrics:read",
]
ALL_SCOPES: tuple[Scope, ...] = get_args(Scope)


@dataclass(frozen=True)
class ParentKey:
    """A key that made the caller's key (directly or through others): its limits bind the caller too."""

    id: str
    limits: Quota


@dataclass(frozen=True)
class Principal:
    """An authenticated caller: a tenant, and (when auth is on) the key it used."""

    tenant: str
    scopes: frozenset[str] = field(default_factory=lambda: frozenset(ALL_SCOPES))
    model_patterns: tuple[str, ...] = ("*",)
    key_id: str | None = None
    """The key's id (``None`` for anonymous use with auth off)."""
    key_prefix: str | None = None
    """The key's display prefix, e.g. ``sk-llmos-AbC1`` (never the secret)."""
    key_limits: Quota = field(default_factory=Quota)
    """The key's own limits (the tenant's apply as well)."""
    parent_keys: tuple[ParentKey, ...] = ()
    """The keys that made this key, nearest first: their limits and budgets apply as well."""

    @property
    def label(self) -> str:
        """Who this is in usage rows and audit events: the key prefix, or ``anonymous``."""
        return self.key_prefix or "anonymous"

    @property
    def is_anonymous(self) -> bool:
        """True for unauthenticated use (auth off): no key was presented."""
        return self.key_id is None

    @property
    def is_admin(self) -> bool:
        return "admin" in self.scopes

    def allows(self, scope: str) -> bool:
        return self.is_admin or scope in self.scopes

    def require(self, scope: str) -> None:
        """Raises Forbidden unless this principal holds ``scope`` (admin holds all)."""
        if not self.allows(scope):
            raise Forbidden(f"this API key lacks the '{scope}' scope")

    def allows_model(self, name: str) -> bool:
        return self.is_admin or any(fnmatch.fnmatchcase(name, p) for p in self.model_patterns)

    def require_model(self, name: str) -> None:
        """Raises Forbidden unless this principal may use model ``name``."""
        if not self.allows_model(name):
            raise Forbidden(f"this API key may not use the model '{name}'")


def anonymous(tenant: str) -> Principal:
    """The principal of unauthenticated use when auth is off: every scope, in ``tenant``."""
    return Principal(tenant=tenant)
