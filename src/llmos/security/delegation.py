"""Keys that make keys: what a key may hand out, and the chain of keys above a key.

A key with ``keys:write`` makes keys for its own tenant as their *parent*; a child never exceeds
its parent (scopes, model patterns, limits, expiry), is bound by its parent's limits and budget
at every request (see :class:`llmos.security.principal.ParentKey`), and dies with it.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime

from llmos.domain.tenancy import ApiKey, Quota
from llmos.errors import Forbidden, Unauthorized
from llmos.security.principal import ParentKey, Principal

MAX_KEY_DEPTH = 8
"""How many keys deep delegation may go (a key made by a key made by a key...)."""


def child_terms(
    actor: Principal,
    parent: ApiKey,
    *,
    scopes: Sequence[str],
    patterns: Sequence[str],
    expires_at: datetime | None,
    quota: Quota,
) -> tuple[datetime | None, Quota]:
    """The expiry and limits of a key ``actor`` (holding key ``parent``) makes with these terms:
    a limit or expiry left out is the parent's. Raises Forbidden when a term exceeds the parent's
    (a scope it lacks, ``admin``, a model beyond its patterns, a limit above its own, a later
    expiry) or delegation goes too deep."""
    beyond = [s for s in scopes if not actor.allows(s)]
    if beyond:
        raise Forbidden(f"a key cannot grant scopes it lacks: {', '.join(beyond)}")
    if not patterns_within(patterns, actor.model_patterns):
        raise Forbidden("a key cannot grant models beyond its own", param="models")
    if len(actor.parent_keys) + 1 >= MAX_KEY_DEPTH:
        raise Forbidden(f"keys can be made from keys at most {MAX_KEY_DEPTH} levels deep")
    if parent.expires_at is not None:
        if expires_at is None:
            expires_at = parent.expires_at
        elif expires_at > parent.expires_at:
            raise Forbidden(
                f"the key making this key expires at {parent.expires_at.isoformat()}; "
                "a key it makes cannot outlive it",
                param="expires_at",
            )
    return expires_at, quota.within(parent.limits)


def patterns_within(wanted: Iterable[str], own: Sequence[str]) -> bool:
    """Whether every pattern of ``wanted`` allows only models ``own`` allows: the same pattern, a
    plain name ``own`` matches, or anything under ``*``."""

    def covered(pattern: str) -> bool:
        plain = not any(c in pattern for c in "*?[")
        return any(o == "*" or o == pattern or (plain and fnmatch.fnmatchcase(pattern, o)) for o in own)

    return all(covered(p) for p in wanted)


def parent_chain(
    key: ApiKey, get_key: Callable[[str], ApiKey | None], now: datetime
) -> tuple[ParentKey, ...]:
    """The keys that made ``key``, nearest first. Raises Unauthorized when one of them is
    revoked or expired (a key lives no longer than the key that made it)."""
    chain: list[ParentKey] = []
    parent_id = key.parent_id
    while parent_id is not None and len(chain) <= MAX_KEY_DEPTH:
        parent = get_key(parent_id)
        if parent is None or parent.revoked_at is not None:
            raise Unauthorized(f"the API key {key.prefix}… was revoked with the key that made it")
        if not parent.usable_at(now):
            raise Unauthorized(f"the API key {key.prefix}… expired with the key that made it")
        chain.append(ParentKey(parent.id, parent.limits))
        parent_id = parent.parent_id
    return tuple(chain)
