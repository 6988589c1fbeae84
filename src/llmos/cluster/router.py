"""Choosing a replica for a request: prefix-cache affinity, balanced against load.

A replica keeps the KV of the prompts it served (llama.cpp's slots reuse a cached prefix), so a
request whose prompt starts like an earlier one is cheapest where that one ran. The router keeps
a table from the hash of each prompt prefix (whole blocks of ``block`` tokens, chained, so a hash
names the whole prefix up to it) to the replica that last served it, and sends a request to the
replica holding its **longest** known prefix — unless that replica's outstanding tokens exceed a
bound on imbalance (consistent hashing with bounded loads): ``load <= (1 + epsilon) * mean + slack``.
Then, and for prompts with no known prefix, it takes the least-loaded replica. Every block of the
chosen request is then recorded for that replica, so a spilled prefix is cached in two places and
both are used afterwards.

The table is bounded (least recently used entries go first); a replica that leaves is forgotten at
once. Not thread-safe: the kernel calls it from the event loop.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from llmos.errors import EngineError, InvalidRequest

DEFAULT_BLOCK = 32
"""Tokens per hashed block: a prefix shorter than one block is not worth routing for."""
DEFAULT_MAX_BLOCKS = 64


def prefix_hashes(
    tokens: Sequence[int], block: int = DEFAULT_BLOCK, max_blocks: int = DEFAULT_MAX_BLOCKS
) -> list[bytes]:
    """The chained hash of each whole block of ``tokens``: entry i names tokens[0 : (i+1)*block]."""
    out: list[bytes] = []
    h = b""
    n = min(len(tokens) // block, max_blocks)
    for i in range(n):
        chunk = tokens[i * block : (i + 1) * block]
        h = hashlib.blake2b(
            h + b"".join(t.to_bytes(4, "little", signed=True) for t in chunk), digest_size=12
        ).digest()
        out.append(h)
    return out


@dataclass(frozen=True)
class RouteDecision:
    replica: str
    matched_blocks: int
    """Whole blocks of the prompt the chosen replica is expected to hold in its cache."""
    reason: str
    """``affinity`` (the longest known prefix), ``spill`` (its replica was over the bound), ``load``
    (no known prefix: least loaded)."""


class PrefixRouter:
    """See the module docstring. ``epsilon``: allowed imbalance over the mean load; ``slack``:
    tokens any replica may hold above that (so a light load is not spread for nothing)."""

    def __init__(
        self,
        *,
        block: int = DEFAULT_BLOCK,
        max_blocks: int = DEFAULT_MAX_BLOCKS,
        epsilon: float = 0.5,
        slack: int = 2048,
        capacity: int = 200_000,
    ) -> None:
        if block < 1 or max_blocks < 1 or epsilon < 0 or slack < 0 or capacity < 1:
            raise InvalidRequest("router: block, max_blocks and capacity >= 1; epsilon, slack >= 0")
        self.block = block
        self.max_blocks = max_blocks
        self.epsilon = epsilon
        self.slack = slack
        self.capacity = capacity
        self._table: OrderedDict[bytes, str] = OrderedDict()
        self.decisions = {"affinity": 0, "spill": 0, "load": 0}

    @property
    def entries(self) -> int:
        """Prefix hashes held (the state's size)."""
        return len(self._table)

    def hashes(self, tokens: Sequence[int]) -> list[bytes]:
        return prefix_hashes(tokens, self.block, self.max_blocks)

    def route(self, tokens: Sequence[int], loads: Mapping[str, int]) -> RouteDecision:
        """The replica for a prompt of ``tokens``, given each live replica's outstanding tokens.
        Records the prompt's prefixes for the chosen one. Raises EngineError with no replica."""
        return self.route_hashes(self.hashes(tokens), loads)

    def route_hashes(self, hashes: Sequence[bytes], loads: Mapping[str, int]) -> RouteDecision:
        if not loads:
            raise EngineError("no replica is running")
        bound = (1.0 + self.epsilon) * (sum(loads.values()) / len(loads)) + self.slack
        least = min(loads, key=lambda r: (loads[r], r))
        choice, matched, reason = least, 0, "load"
        for i in range(len(hashes) - 1, -1, -1):
            owner = self._table.get(hashes[i])
            if owner is None or owner not in loads:
                continue
            if loads[owner] <= bound:
                choice, matched, reason = owner, i + 1, "affinity"
            else:
                reason = "spill"
            break
        self._remember(hashes, choice)
        self.decisions[reason] += 1
        return RouteDecision(choice, matched, reason)

    def forget(self, replica: str) -> None:
        """Drop every prefix recorded for ``replica`` (it stopped, or died: its cache is gone)."""
        for key in [k for k, r in self._table.items() if r == replica]:
            del self._table[key]

    def _remember(self, hashes: Sequence[bytes], replica: str) -> None:
        table = self._table
        for h in hashes:
            table[h] = replica
            table.move_to_end(h)
        while len(table) > self.capacity:
            table.popitem(last=False)
