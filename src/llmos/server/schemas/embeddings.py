"""``POST /v1/embeddings`` request and response shapes (OpenAI's)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from llmos.server.schemas.common import RequestModel

EmbeddingInput = str | list[str] | list[int] | list[list[int]]


class EmbeddingRequest(RequestModel):
    model: str = Field(min_length=1)
    input: EmbeddingInput
    """A string, a list of strings, a token list (the model's own token ids) or a list of those."""
    encoding_format: Literal["float", "base64"] = "float"
    """``base64``: each vector as little-endian float32 bytes, base64-encoded."""
    dimensions: int | None = Field(default=None, ge=1)
    """Accepted only when it equals the model's size: llmos does not shorten embeddings."""
    user: str | None = Field(default=None, max_length=256)
    keep_alive: str | float | None = None
    """llmos extension (Ollama's meaning): how long the model stays loaded after this request."""

    def inputs(self) -> list[str] | list[list[int]]:
        """The input as a list of strings or a list of token lists."""
        raw = self.input
        if isinstance(raw, str):
            return [raw]
        strings = [x for x in raw if isinstance(x, str)]
        if len(strings) == len(raw):
            return strings
        tokens = [x for x in raw if isinstance(x, int)]
        if len(tokens) == len(raw):
            return [tokens]
        return [x for x in raw if isinstance(x, list)]


class Embedding(BaseModel):
    object: Literal["embedding"] = "embedding"
    index: int
    embedding: list[float] | str


class EmbeddingUsage(BaseModel):
    prompt_tokens: int
    total_tokens: int


class EmbeddingList(BaseModel):
    object: Literal["list"] = "list"
    data: list[Embedding]
    model: str
    usage: EmbeddingUsage
