"""Model names: ``family:tag`` and ``family@sha256:<64 hex>`` (a pinned version)."""

from __future__ import annotations

import re
from dataclasses import dataclass

from llmos.errors import InvalidModelName

_PART = r"[a-z0-9](?:[a-z0-9._-]{0,62}[a-z0-9])?"
_FAMILY = re.compile(rf"^{_PART}(?:/{_PART}){{0,2}}$")
"""``family``, ``namespace/family`` or ``host/org/repo`` (hub pulls such as ``hf.co/org/repo``)."""
_TAG = re.compile(r"^[a-z0-9](?:[a-z0-9._-]{0,126})$")
_DIGEST = re.compile(r"^[0-9a-f]{64}$")
DEFAULT_TAG = "latest"


@dataclass(frozen=True)
class ModelRef:
    """A parsed model name. Exactly one of ``tag`` and ``digest`` is set."""

    family: str
    tag: str | None = None
    digest: str | None = None

    @property
    def name(self) -> str:
        """The ``family:tag`` form (for a pinned ref, the family alone)."""
        return f"{self.family}:{self.tag}" if self.tag is not None else self.family

    def __str__(self) -> str:
        if self.digest is not None:
            return f"{self.family}@sha256:{self.digest}"
        return self.name


def parse_name(raw: str) -> ModelRef:
    """Parse ``family[:tag]`` or ``family@sha256:<digest>``; the tag defaults to ``latest``.

    Raises InvalidModelName with a message that says what a valid name looks like.
    """
    text = raw.strip().lower()
    hint = "model names look like 'smollm2:135m' or 'smollm2@sha256:<64 hex digits>'"
    if not text:
        raise InvalidModelName(f"empty model name; {hint}", param="model")
    if "@" in text:
        family, _, pin = text.partition("@")
        if not pin.startswith("sha256:"):
            raise InvalidModelName(f"invalid digest in {raw!r}: expected 'sha256:'; {hint}", param="model")
        digest = pin.removeprefix("sha256:")
        if not _DIGEST.match(digest):
            raise InvalidModelName(
                f"invalid digest in {raw!r}: a sha256 digest is 64 hex digits; {hint}", param="model"
            )
        _check_family(family, raw, hint)
        return ModelRef(family=family, digest=digest)
    family, sep, tag = text.partition(":")
    if sep and not tag:
        raise InvalidModelName(f"empty tag in {raw!r}; {hint}", param="model")
    if ":" in tag:
        raise InvalidModelName(f"too many ':' in {raw!r}; {hint}", param="model")
    _check_family(family, raw, hint)
    tag = tag or DEFAULT_TAG
    if not _TAG.match(tag):
        raise InvalidModelName(f"invalid tag {tag!r} in {raw!r}; {hint}", param="model")
    return ModelRef(family=family, tag=tag)


def _check_family(family: str, raw: str, hint: str) -> None:
    if not _FAMILY.match(family) or ".." in family:
        raise InvalidModelName(f"invalid model name {raw!r}; {hint}", param="model")
