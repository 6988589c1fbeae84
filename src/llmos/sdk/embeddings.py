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
from typing import Any, Protocol

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


def request_body(
    model: str, input: EmbeddingInput, dimensions: int | None, user: str | None
) -> dict[str, Any]:
    items: str | list[Any] = (
        input if isinstance(input, str) else [x if isinstance(x, str | int) else list(x) for x in input]
    )
    body: dict[str, Any] = {"model": model, "input": items, "encoding_format": "base64"}
    if dimensions is not None:
        body["dimensions"] = dimensions
    if user is not None:
        body["user"] = user
    return body


class _SyncRequester(Protocol):
    def _request(self, method: str, path: str, **kwargs: Any) -> Any: ...


class _AsyncRequester(Protocol):
    async def _request(self, method: str, path: str, **kwargs: Any) -> Any: ...


class Embeddings:
    """``client.embeddings`` on :class:`llmos.Client`."""

    def __init__(self, client: _SyncRequester) -> None:
        self._client = client

    def create(
        self, model: str, input: EmbeddingInput, *, dimensions: int | None = None, user: str | None = None
    ) -> EmbeddingResult:
        """Embed ``input`` with ``model``; raises BadRequestError for an input the model cannot take."""
        body = request_body(model, input, dimensions, user)
        return EmbeddingResult.from_json(self._client._request("POST", "/v1/embeddings", json=body))


class AsyncEmbeddings:
    """``client.embeddings`` on :class:`llmos.AsyncClient`."""

    def __init__(self, client: _AsyncRequester) -> None:
        self._client = client

    async def create(
        self, model: str, input: EmbeddingInput, *, dimensions: int | None = None, user: str | None = None
    ) -> EmbeddingResult:
        """Embed ``input`` with ``model``; raises BadRequestError for an input the model cannot take."""
        body = request_body(model, input, dimensions, user)
        return EmbeddingResult.from_json(await self._client._request("POST", "/v1/embeddings", json=body))
