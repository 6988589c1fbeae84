"""Shared prefill: prompts that start alike and are read in the same step compute their common
start once.

Sequences admitted together often share a long start — the same system prompt and chat template
before the user's words. Prefix reuse (``slots.py``) finds KV that is already resident; it finds
nothing for prompts that arrive together, so each would compute the same tokens again. Instead,
one of them (the *donor*) feeds the common run in a first, small decode; every other one
(a *follower*) then gets a copy of those cells and feeds only the rest of its chunk in the step's
main decode. With per-slot KV streams and greedy sampling the output is identical to prefilling
each prompt alone (tested): the copied cells hold the very same keys and values. In one unified
KV buffer the cells lie elsewhere and a near-tie may flip, as across any two batch shapes.

This module only groups; the engine does the decoding and copying.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from llmos.types import TokenId

K = TypeVar("K", bound=Hashable)

DEFAULT_MIN_TOKENS = 16
"""A follower joins a group only when it shares at least this many tokens with the donor (a
shorter run saves less than the extra decode costs)."""


@dataclass
class Group(Generic[K]):
    donor: K
    run: int
    """Tokens of the donor's chunk fed in the first decode (the longest share of any follower)."""
    followers: list[tuple[K, int]] = field(default_factory=list)
    """(key, tokens copied from the donor) for every follower."""


def common_prefix(a: Sequence[TokenId], b: Sequence[TokenId], limit: int) -> int:
    """Length of the common start of ``a`` and ``b``, at most ``limit``."""
    n = 0
    for x, y in zip(a, b, strict=False):
        if n >= limit or x != y:
            break
        n += 1
    return n


def group_shared_prefixes(
    chunks: Sequence[tuple[K, Sequence[TokenId]]], min_tokens: int = DEFAULT_MIN_TOKENS
) -> list[Group[K]]:
    """Group chunks that all start at the same position (each a fresh sequence's first chunk).

    The first chunk not yet grouped is a donor; every later one sharing at least ``min_tokens``
    tokens with it follows it. A share always leaves each chunk at least one token of its own
    (the token whose logits it may sample). Chunks in no group are not mentioned.
    """
    if min_tokens <= 0:
        return []
    groups: list[Group[K]] = []
    left = [(k, c) for k, c in chunks if len(c) > min_tokens]
    while len(left) > 1:
        (donor, dchunk), rest = left[0], left[1:]
        followers: list[tuple[K, int]] = []
        unmatched: list[tuple[K, Sequence[TokenId]]] = []
        for key, chunk in rest:
            n = common_prefix(dchunk, chunk, min(len(dchunk), len(chunk)) - 1)
            if n >= min_tokens:
                followers.append((key, n))
            else:
                unmatched.append((key, chunk))
        if followers:
            groups.append(Group(donor=donor, run=max(n for _, n in followers), followers=followers))
        left = unmatched
    return groups
