"""Recommendation service: items from the sample catalog for a user's history and wish.

Embeddings (``client.embeddings``) find the candidates: the catalog items closest to the wish
and to what the user already liked, excluding what they have. The chat model then picks among
the candidates and explains each pick; its answer is schema-constrained so the ids it names can
only be candidate ids (an ``enum`` in the schema). Built only on the public SDK.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass

from llmos.apps.catalog import Catalog, Item, load_catalog
from llmos.apps.structured_chat import json_chat
from llmos.sdk import Client
from llmos.sdk.errors import APIStatusError

log = logging.getLogger(__name__)

DEFAULT_EMBEDDING_MODEL = "minilm:l6"
HISTORY_WEIGHT = 0.5


@dataclass(frozen=True)
class Pick:
    item: Item
    reason: str
    score: float
    """The candidate's similarity score (higher is closer)."""


@dataclass(frozen=True)
class Recommendation:
    picks: tuple[Pick, ...]
    candidates: tuple[Item, ...]
    embedding_model: str
    """The model that embedded the catalog (the chat model when the default was unavailable)."""


def _cosine(a: Sequence[float], b: Sequence[float]) -> float:
    dot = sum(x * y for x, y in zip(a, b, strict=True))
    na, nb = math.sqrt(sum(x * x for x in a)), math.sqrt(sum(y * y for y in b))
    return dot / (na * nb) if na and nb else 0.0


def _mean(vectors: Sequence[Sequence[float]]) -> list[float]:
    return [sum(col) / len(vectors) for col in zip(*vectors, strict=True)]


class Recommender:
    """Recommends catalog items with ``chat_model``, finding candidates with ``embedding_model``
    (falling back to the chat model's own embeddings when that model is not available)."""

    def __init__(
        self,
        client: Client,
        chat_model: str,
        catalog: Catalog | None = None,
        *,
        embedding_model: str = DEFAULT_EMBEDDING_MODEL,
        n_candidates: int = 5,
        max_tokens: int = 300,
    ) -> None:
        self.client = client
        self.chat_model = chat_model
        self.catalog = catalog if catalog is not None else load_catalog()
        self.embedding_model = embedding_model
        self.n_candidates = n_candidates
        self.max_tokens = max_tokens
        self._vectors: dict[str, list[float]] | None = None

    # ---- candidates ----------------------------------------------------------------------

    def _embed(self, texts: list[str]) -> list[list[float]]:
        return self.client.embeddings.create(self.embedding_model, texts).vectors

    def _catalog_vectors(self) -> dict[str, list[float]]:
        if self._vectors is None:
            texts = [item.embedding_text() for item in self.catalog]
            try:
                vectors = self._embed(texts)
            except APIStatusError as exc:
                if self.embedding_model == self.chat_model:
                    raise
                log.warning(
                    "embedding model %s is not available (%s); using %s's embeddings",
                    self.embedding_model,
                    exc.message,
                    self.chat_model,
                )
                self.embedding_model = self.chat_model
                vectors = self._embed(texts)
            self._vectors = {item.id: v for item, v in zip(self.catalog, vectors, strict=True)}
        return self._vectors

    def resolve(self, history: Sequence[str]) -> list[Item]:
        """Catalog items named in ``history`` by id or by title (unknown entries are skipped)."""
        found: list[Item] = []
        for entry in history:
            item = self.catalog.get(entry) if entry in self.catalog else self.catalog.find_title(entry)
            if item is not None and item not in found:
                found.append(item)
        return found

    def candidates(self, wish: str, history: Sequence[str] = ()) -> list[tuple[Item, float]]:
        """The closest items to the wish (and the history), best first, never one already had."""
        vectors = self._catalog_vectors()
        query = self._embed([wish or "a good book"])[0]
        owned = self.resolve(history)
        liked = _mean([vectors[i.id] for i in owned]) if owned else None
        scored = []
        for item in self.catalog:
            if item in owned:
                continue
            score = _cosine(query, vectors[item.id])
            if liked is not None:
                score += HISTORY_WEIGHT * _cosine(liked, vectors[item.id])
            scored.append((item, score))
        scored.sort(key=lambda pair: -pair[1])
        return scored[: self.n_candidates]

    # ---- choice --------------------------------------------------------------------------

    def recommend(self, wish: str, history: Sequence[str] = (), *, n: int = 2) -> Recommendation:
        """Up to ``n`` picks among the candidates, each with the model's reason.

        Raises AppError (an answer that does not validate) and the SDK's errors.
        """
        scored = self.candidates(wish, history)
        by_id = {item.id: (item, score) for item, score in scored}
        owned = ", ".join(i.title for i in self.resolve(history)) or "nothing yet"
        listing = "\n".join(
            f"- {item.id}: {item.title} by {item.author} ({item.genre}). {item.description}"
            for item, _ in scored
        )
        schema = {
            "type": "object",
            "properties": {
                "picks": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "properties": {
                            "id": {"type": "string", "enum": list(by_id)},
                            "reason": {"type": "string", "minLength": 1, "maxLength": 160},
                        },
                        "required": ["id", "reason"],
                        "additionalProperties": False,
                    },
                    "minItems": 1,
                    "maxItems": max(1, min(n, len(by_id))),
                }
            },
            "required": ["picks"],
            "additionalProperties": False,
        }
        messages = [
            {
                "role": "system",
                "content": "You are a bookseller. Choose the best books for the customer from the "
                "candidates, by id, and say in one sentence why each fits.",
            },
            {
                "role": "user",
                "content": f"I have read: {owned}.\nI would like: {wish}\n\nCandidates:\n{listing}",
            },
        ]
        answer = json_chat(
            self.client, self.chat_model, messages, schema, name="recommendation", max_tokens=self.max_tokens
        )
        picks: list[Pick] = []
        for p in answer["picks"]:
            if p["id"] in by_id and all(x.item.id != p["id"] for x in picks):
                item, score = by_id[p["id"]]
                picks.append(Pick(item, " ".join(p["reason"].split()), score))
        return Recommendation(tuple(picks), tuple(i for i, _ in scored), self.embedding_model)
