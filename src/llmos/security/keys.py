"""API key material: ``sk-llmos-<secret>`` keys made with :mod:`secrets`, stored only as a hash.

A key is ``sk-llmos-`` plus 43 URL-safe characters (256 random bits). The database keeps its
SHA-256 and a display prefix (``sk-llmos-`` plus the first 8 secret characters) by which it is
looked up; the hash is then compared in constant time. The secret is shown once and never kept.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass

KEY_MARK = "sk-llmos-"
PREFIX_CHARS = 8
"""Secret characters kept in the display prefix (48 bits: enough to find the row, useless to guess)."""
KEY_PATTERN = re.compile(r"sk-llmos-[A-Za-z0-9_\-]{9,}")
"""Anything longer than a display prefix that looks like an llmos key (what log redaction removes)."""


@dataclass(frozen=True)
class NewKey:
    secret: str
    """The whole key, shown to its owner once."""
    prefix: str
    hash: str


def hash_key(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8", errors="surrogatepass")).hexdigest()


def display_prefix(secret: str) -> str:
    """The public part of a key: ``sk-llmos-AbCd1234``. For a foreign secret, only a short mark."""
    if secret.startswith(KEY_MARK):
        return secret[: len(KEY_MARK) + PREFIX_CHARS]
    return "env:" + hash_key(secret)[:8]


def generate_key() -> NewKey:
    secret = KEY_MARK + secrets.token_urlsafe(32)
    return NewKey(secret=secret, prefix=display_prefix(secret), hash=hash_key(secret))


def new_key_id() -> str:
    return "key_" + secrets.token_hex(8)


def matches(secret: str, stored_hash: str) -> bool:
    """Whether ``secret`` hashes to ``stored_hash``, compared in constant time."""
    return hmac.compare_digest(hash_key(secret), stored_hash)


def looks_like_key(token: str) -> bool:
    return token.startswith(KEY_MARK) and len(token) > len(KEY_MARK) + PREFIX_CHARS
