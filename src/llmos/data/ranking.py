"""Fusing ranked lists: reciprocal rank fusion (Cormack, Clarke & Büttcher, SIGIR 2009).

Each list contributes ``1 / (k + rank)`` (rank from 1) to an item's score. Scores from
different retrievers (cosine similarity, bm25) are not comparable; ranks are, which is why
hybrid search fuses ranks rather than scores.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from llmos.domain.data import Filters

RRF_K = 60


def reciprocal_rank_fusion(rankings: Sequence[Sequence[int]], k: int = RRF_K) -> list[tuple[int, float]]:
    """Items of every ranking by fused score, best first (ties keep first-seen order)."""
    scores: dict[int, float] = {}
    for ranking in rankings:
        for rank, item in enumerate(ranking, start=1):
            scores[item] = scores.get(item, 0.0) + 1.0 / (k + rank)
    return sorted(scores.items(), key=lambda kv: -kv[1])


def matches(metadata: Mapping[str, Any], filters: Filters) -> bool:
    """Whether document ``metadata`` satisfies every filter (equality, or one-of for a list)."""
    for key, wanted in filters.items():
        value = metadata.get(key)
        if isinstance(wanted, list):
            if value not in wanted:
                return False
        elif value != wanted:
            return False
    return True
