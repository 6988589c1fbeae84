"""A deterministic embedder for data tests: hashed bag of words, L2-normalized.

Texts sharing words get similar vectors, so ranking tests mean something without a model.
``fail_on`` makes the call that embeds the n-th text (counted from 1 over the embedder's life)
raise, to test uploads that fail half-way.
"""

from __future__ import annotations

import hashlib
import math
import re

from llmos.domain.data import Embedded

_WORD = re.compile(r"\w+")


class EmbeddingFailed(RuntimeError):
    pass


class HashEmbedder:
    def __init__(self, dim: int = 64, *, fail_on: int | None = None) -> None:
        self.dim = dim
        self.fail_on = fail_on
        self.texts_seen = 0
        self.calls: list[tuple[str, int, str]] = []

    def vector(self, text: str) -> list[float]:
        v = [0.0] * self.dim
        for word in _WORD.findall(text.lower()):
            h = hashlib.blake2b(word.encode(), digest_size=8).digest()
            v[int.from_bytes(h[:4], "little") % self.dim] += 1.0 if h[4] & 1 else -1.0
        norm = math.sqrt(sum(x * x for x in v)) or 1.0
        return [x / norm for x in v]

    async def __call__(self, model: str, texts: list[str], tenant: str) -> Embedded:
        """The vectors, and one token per word (plus one per text) spent on them."""
        self.calls.append((model, len(texts), tenant))
        if self.fail_on is not None and self.texts_seen < self.fail_on <= self.texts_seen + len(texts):
            self.texts_seen += len(texts)
            raise EmbeddingFailed(f"embedding failed on text {self.fail_on}")
        self.texts_seen += len(texts)
        tokens = sum(len(_WORD.findall(t)) + 1 for t in texts)
        return Embedded([self.vector(t) for t in texts], tokens)
