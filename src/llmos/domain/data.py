"""What the data subsystem takes and gives: plain frozen values (no rows, no HTTP shapes)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, TypeAlias


@dataclass(frozen=True)
class Embedded:
    """What an embedder gives back: one vector per text, and the tokens it spent on them."""

    vectors: list[list[float]]
    tokens: int


Embedder: TypeAlias = Callable[[str, list[str], str], Awaitable[Embedded]]
"""``await embed(model, texts, tenant)`` → one vector per text and the tokens spent. The kernel
wires ``kernel.embed``; tests inject a deterministic fake."""
Spent: TypeAlias = Callable[[int], None]
"""Told the tokens an operation spends on a caller's behalf, as it spends them (metering)."""

SearchMode: TypeAlias = Literal["hybrid", "vector", "keyword"]
DatasetFormat: TypeAlias = Literal["chat", "completion"]
MetadataValue: TypeAlias = str | int | float | bool | None
Filters: TypeAlias = Mapping[str, MetadataValue | list[MetadataValue]]
"""Document metadata filters: ``{key: value}`` must equal; ``{key: [a, b]}`` must be one of them."""

DEFAULT_EMBEDDING_MODEL = "minilm:l6"
DEFAULT_CHUNK_TOKENS = 200
"""Under MiniLM's 256-token window even where the approximate count is low."""
DEFAULT_CHUNK_OVERLAP = 30


@dataclass(frozen=True)
class Collection:
    id: int
    tenant: str
    name: str
    embedding_model: str
    dimensions: int | None
    chunk_tokens: int
    chunk_overlap: int
    description: str
    created_at: datetime
    document_count: int = 0
    chunk_count: int = 0


@dataclass(frozen=True)
class Document:
    """One version of a named document in a collection."""

    id: int
    collection: str
    name: str
    version: int
    latest: bool
    content_type: str
    digest: str
    size: int
    chunk_count: int
    token_count: int
    embedding_model: str
    metadata: Mapping[str, Any]
    created_at: datetime


@dataclass(frozen=True)
class NewChunk:
    """A chunk ready to be stored: text, where it came from, and its embedding."""

    position: int
    text: str
    token_count: int
    start: int
    end: int
    embedding: tuple[float, ...]


@dataclass(frozen=True)
class NewDocument:
    name: str
    content_type: str
    digest: str
    size: int
    embedding_model: str
    metadata: Mapping[str, Any]
    chunks: tuple[NewChunk, ...]


@dataclass(frozen=True)
class ChunkHit:
    """A chunk with what a ranking needs to show it."""

    chunk_id: int
    document_id: int
    document: str
    version: int
    collection: str
    position: int
    text: str
    metadata: Mapping[str, Any]


@dataclass(frozen=True)
class SearchHit:
    """One ranked result. ``score`` is the fused rank score (reciprocal rank fusion in hybrid
    mode); ``vector_score`` is cosine similarity, ``keyword_score`` the full-text relevance."""

    chunk: ChunkHit
    score: float
    vector_score: float | None = None
    keyword_score: float | None = None


@dataclass(frozen=True)
class Dataset:
    id: int
    tenant: str
    name: str
    version: int
    format: DatasetFormat
    digest: str
    size: int
    line_count: int
    token_count: int
    created_at: datetime
