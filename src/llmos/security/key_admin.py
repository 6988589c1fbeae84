"""Key management on the security service: make, list, show, revoke and limit API keys.

A mixin of :class:`llmos.security.service.Security` (which provides the database, the clock,
tenants and the audit log). Admins manage every key; another key needs ``keys:write`` and
manages itself and the keys made from it (:mod:`llmos.security.delegation`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from llmos.domain.tenancy import ApiKey, Quota, StoredKey, Tenant
from llmos.errors import Forbidden, InvalidRequest, NotFound
from llmos.security.delegation import child_terms
from llmos.security.keys import generate_key, new_key_id
from llmos.security.principal import ALL_SCOPES, Principal
from llmos.storage.security import SecurityRepository

DEFAULT_KEY_SCOPES: tuple[str, ...] = ("inference", "embeddings", "models:read", "fine-tune", "data")
"""A new key's scopes unless told otherwise: everything but managing models and keys, and admin."""


class KeyAdmin:
    """API keys over the service's repository. What the service provides is declared here."""

    @property
    def anonymous_tenant(self) -> str:
        raise NotImplementedError

    @property
    def store(self) -> SecurityRepository:
        raise NotImplementedError

    def now(self) -> datetime:
        raise NotImplementedError

    def ensure_tenant(self, name: str) -> Tenant:
        raise NotImplementedError

    def _existing_tenant(self, name: str) -> Tenant:
        raise NotImplementedError

    def audit(
        self,
        actor: Principal,
        action: str,
        target: str,
        detail: Mapping[str, Any] | None = None,
        *,
        tenant: str | None = None,
    ) -> None:
        raise NotImplementedError

    def create_key(
        self,
        actor: Principal,
        *,
        tenant: str | None = None,
        name: str = "",
        scopes: Iterable[str] | None = None,
        models: Iterable[str] | None = None,
        expires_at: datetime | None = None,
        limits: Mapping[str, Any] | None = None,
        admin: bool = False,
    ) -> tuple[ApiKey, str]:
        """Make a key and return it with its secret (shown once, never stored). Needs ``keys:write``.

        Admins may make keys for any tenant. Another key makes keys for its own tenant only, as
        their parent: with a subset of its scopes (by default, the default scopes it holds) and
        models (never ``admin``), limits no higher
        than its own (those left out are inherited) and an expiry no later than its own; the new
        key is also bound by its parent's limits and budget when used, and dies with it. The
        anonymous tenant is created on first use; other tenants must exist (NotFound).
        """
        actor.require("keys:write")
        target = tenant or actor.tenant
        if scopes is not None:
            wanted = tuple(dict.fromkeys(scopes))
        else:  # the defaults a key making a key holds itself
            wanted = tuple(s for s in DEFAULT_KEY_SCOPES if actor.is_admin or actor.allows(s))
        if admin:
            wanted = tuple(dict.fromkeys([*(wanted if scopes is not None else ALL_SCOPES), "admin"]))
        unknown = [s for s in wanted if s not in ALL_SCOPES]
        if unknown:
            raise InvalidRequest(
                f"unknown scope(s) {', '.join(unknown)}; expected {', '.join(ALL_SCOPES)}", param="scopes"
            )
        patterns = tuple(dict.fromkeys(models)) if models is not None else ("*",)
        if not patterns or any(not p or len(p) > 200 for p in patterns):
            raise InvalidRequest("model patterns must be 1-200 characters each", param="models")
        now = self.now()
        if expires_at is not None:
            expires_at = expires_at if expires_at.tzinfo else expires_at.replace(tzinfo=UTC)
            if expires_at <= now:
                raise InvalidRequest("expires_at must be in the future", param="expires_at")
        quota = Quota.from_json(limits)
        parent: ApiKey | None = None
        if not actor.is_admin:
            if target != actor.tenant:
                raise NotFound(f"tenant {target!r} not found")
            parent = self.store.get_key(actor.key_id) if actor.key_id is not None else None
            if parent is None:
                raise Forbidden("only an API key or an admin can make keys")
            expires_at, quota = child_terms(
                actor, parent, scopes=wanted, patterns=patterns, expires_at=expires_at, quota=quota
            )
        if target == self.anonymous_tenant:
            self.ensure_tenant(target)
        else:
            self._existing_tenant(target)
        made = generate_key()
        key = ApiKey(
            id=new_key_id(),
            prefix=made.prefix,
            tenant=target,
            name=name[:200],
            scopes=wanted,
            models=patterns,
            limits=quota,
            created_at=now,
            expires_at=expires_at,
            created_by=actor.label,
            parent_id=parent.id if parent is not None else None,
        )
        self.store.add_key(StoredKey(key=key, hash=made.hash))
        detail: dict[str, Any] = {
            "tenant": target,
            "prefix": key.prefix,
            "scopes": list(wanted),
            "models": list(patterns),
        }
        if parent is not None:
            detail["parent"] = parent.id
        self.audit(actor, "key.create", key.id, detail, tenant=target)
        return key, made.secret

    def list_keys(self, actor: Principal, tenant: str | None = None) -> list[ApiKey]:
        """Every key for an admin (optionally of one tenant); for another key with ``keys:write``,
        itself and the keys made from it."""
        if actor.is_admin:
            return self.store.list_keys(tenant)
        actor.require("keys:write")
        if tenant is not None and tenant != actor.tenant:
            raise NotFound(f"tenant {tenant!r} not found")
        family = set(self.store.key_family(actor.key_id)) if actor.key_id is not None else set()
        return [k for k in self.store.list_keys(actor.tenant) if k.id in family]

    def get_key(self, actor: Principal, key_id: str) -> ApiKey:
        """A key the actor manages (see :meth:`list_keys`). Raises Forbidden without ``keys:write``,
        NotFound for any other key (another tenant's included)."""
        if not actor.is_admin:
            actor.require("keys:write")
        key = self.store.get_key(key_id)
        if key is None or not (actor.is_admin or self._manages(actor, key)):
            raise NotFound(f"API key {key_id!r} not found")
        return key

    def _manages(self, actor: Principal, key: ApiKey) -> bool:
        if actor.key_id is None or key.tenant != actor.tenant:
            return False
        return key.id in self.store.key_family(actor.key_id)

    def revoke_key(self, actor: Principal, key_id: str) -> ApiKey:
        """Revoke a key and every key made from it, at once (their next request gets 401).
        Idempotent; Forbidden and NotFound as :meth:`get_key`."""
        key = self.get_key(actor, key_id)
        if key.revoked_at is None:  # the keys made from it went with it, if it was revoked before
            family = self.store.key_family(key.id)
            self.store.revoke_keys(family, self.now())
            detail: dict[str, Any] = {"prefix": key.prefix}
            if len(family) > 1:
                detail["with"] = family[1:]
            self.audit(actor, "key.revoke", key.id, detail, tenant=key.tenant)
        return self.get_key(actor, key_id)

    def update_key(
        self,
        actor: Principal,
        key_id: str,
        *,
        name: str | None = None,
        limits: Mapping[str, Any] | None = None,
    ) -> ApiKey:
        """Rename a key or change its limits (merged; a None value removes a limit). Admin only:
        a tenant cannot lift its own keys' limits. Applies to the key's next request."""
        actor.require("admin")
        key = self.get_key(actor, key_id)
        quota = key.limits.updated(limits) if limits is not None else key.limits
        self.store.update_key(key.id, name=(name if name is not None else key.name)[:200], limits=quota)
        detail: dict[str, Any] = {}
        if limits is not None:
            detail["limits"] = dict(limits)
        if name is not None:
            detail["name"] = name
        self.audit(
            actor, "key.limits" if limits is not None else "key.update", key.id, detail, tenant=key.tenant
        )
        return self.get_key(actor, key_id)
