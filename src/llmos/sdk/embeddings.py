"""``client.embeddings``: vectors for texts (or token lists) from ``POST /v1/embeddings``.

Vectors travel base64-encoded (little-endian float32, a quarter of the JSON's size) and come
back as lists of floats, L2-normalized, one per input in input order.
"""

from __future__ import annotations

import base64
import sys
from array import array
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from llmos.sdk._core import Call

EmbeddingInput = str | Sequence[str] | Sequence[int] | Sequence[Sequence[int]]
"""A text, texts, one token list (the model's own token ids) or token lists."""


@dataclass(frozen=True)
class EmbeddingResult:
    model: str
    vectors: list[list[float]]
    prompt_tokens: int

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> EmbeddingResult:
        rows = sorted(d.get("data", []), key=lambda r: int(r.get("index", 0)))
        return cls(
            model=str(d.get("model", "")),
            vectors=[_vector(r["embedding"]) for r in rows],
            prompt_tokens=int((d.get("usage") or {}).get("prompt_tokens", 0)),
        )


def _vector(raw: Any) -> list[float]:
    if isinstance(raw, str):
        packed = array("f")
        packed.frombytes(base64.b64decode(raw))
        if sys.byteorder != "little":
            packed.byteswap()
        return packed.tolist()
    return [float(v) for v in raw]


def create(
    model: str, input: EmbeddingInput, dimensions: int | None, user: str | None
) -> Call[EmbeddingResult]:
    items: str | list[Any] = (
        input if isinstance(input, str) else [x if isinstance(x, str | int) else list(x) for x in input]
    )
    body: dict[str, Any] = {"model": model, "input": items, "encoding_format": "base64"}
    if dimensions is not None:
        body["dimensions"] = dimensions
    if user is not None:
        body["user"] = user
    return Call("POST", "/v1/embeddings", EmbeddingResult.from_json, json=body)
