"""Shapes of the data API: ``/api/collections``, ``/api/search`` and ``/api/datasets``."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

from llmos.domain.data import Collection, Dataset, Document, SearchHit
from llmos.server.schemas.common import RequestModel

MetadataValue = str | int | float | bool | None


class CollectionCreate(RequestModel):
    name: str = Field(min_length=1, max_length=200)
    embedding_model: str | None = Field(default=None, min_length=1)
    """Default ``minilm:l6``; every document of the collection is embedded with it."""
    chunk_tokens: int | None = Field(default=None, ge=16, le=8192)
    chunk_overlap: int | None = Field(default=None, ge=0)
    description: str = Field(default="", max_length=2000)


class CollectionOut(BaseModel):
    name: str
    embedding_model: str
    dimensions: int | None
    chunk_tokens: int
    chunk_overlap: int
    description: str
    documents: int
    chunks: int
    created_at: datetime

    @classmethod
    def of(cls, c: Collection) -> CollectionOut:
        return cls(
            name=c.name,
            embedding_model=c.embedding_model,
            dimensions=c.dimensions,
            chunk_tokens=c.chunk_tokens,
            chunk_overlap=c.chunk_overlap,
            description=c.description,
            documents=c.document_count,
            chunks=c.chunk_count,
            created_at=c.created_at,
        )


class CollectionList(BaseModel):
    data: list[CollectionOut]


class DocumentOut(BaseModel):
    id: int
    collection: str
    name: str
    version: int
    latest: bool
    content_type: str
    digest: str
    size: int
    chunks: int
    tokens: int
    embedding_model: str
    metadata: dict[str, Any]
    created_at: datetime

    @classmethod
    def of(cls, d: Document) -> DocumentOut:
        return cls(
            id=d.id,
            collection=d.collection,
            name=d.name,
            version=d.version,
            latest=d.latest,
            content_type=d.content_type,
            digest=d.digest,
            size=d.size,
            chunks=d.chunk_count,
            tokens=d.token_count,
            embedding_model=d.embedding_model,
            metadata=dict(d.metadata),
            created_at=d.created_at,
        )


class DocumentList(BaseModel):
    data: list[DocumentOut]


class SearchRequest(RequestModel):
    query: str = Field(min_length=1, max_length=8000)
    top_k: int = Field(default=5, ge=1, le=100)
    mode: Literal["hybrid", "vector", "keyword"] = "hybrid"
    filters: dict[str, MetadataValue | list[MetadataValue]] | None = None
    """Document metadata that must match: ``{"key": value}`` or ``{"key": [one, of]}``."""


class MultiSearchRequest(SearchRequest):
    collections: list[str] = Field(min_length=1, max_length=16)


class SearchHitOut(BaseModel):
    collection: str
    document: str
    document_id: int
    version: int
    chunk: int
    text: str
    score: float
    vector_score: float | None
    keyword_score: float | None
    metadata: dict[str, Any]

    @classmethod
    def of(cls, h: SearchHit) -> SearchHitOut:
        return cls(
            collection=h.chunk.collection,
            document=h.chunk.document,
            document_id=h.chunk.document_id,
            version=h.chunk.version,
            chunk=h.chunk.position,
            text=h.chunk.text,
            score=h.score,
            vector_score=h.vector_score,
            keyword_score=h.keyword_score,
            metadata=dict(h.chunk.metadata),
        )


class SearchResponse(BaseModel):
    data: list[SearchHitOut]


class DatasetOut(BaseModel):
    id: int
    name: str
    version: int
    format: str
    digest: str
    size: int
    lines: int
    tokens: int
    created_at: datetime

    @classmethod
    def of(cls, d: Dataset) -> DatasetOut:
        return cls(
            id=d.id,
            name=d.name,
            version=d.version,
            format=d.format,
            digest=d.digest,
            size=d.size,
            lines=d.line_count,
            tokens=d.token_count,
            created_at=d.created_at,
        )


class DatasetList(BaseModel):
    data: list[DatasetOut]


class Deleted(BaseModel):
    deleted: bool = True
