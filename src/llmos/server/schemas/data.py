"""Shapes of the data API: ``/api/collections``, ``/api/search`` and ``/api/datasets``."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import AliasPath, BaseModel, Field

from llmos.server.schemas.common import DomainView, RequestModel

MetadataValue = str | int | float | bool | None


class CollectionCreate(RequestModel):
    name: str = Field(min_length=1, max_length=200)
    embedding_model: str | None = Field(default=None, min_length=1)
    """Default ``minilm:l6``; every document of the collection is embedded with it."""
    chunk_tokens: int | None = Field(default=None, ge=16, le=8192)
    chunk_overlap: int | None = Field(default=None, ge=0)
    description: str = Field(default="", max_length=2000)


class CollectionOut(DomainView):
    name: str
    embedding_model: str
    dimensions: int | None
    chunk_tokens: int
    chunk_overlap: int
    description: str
    documents: int = Field(validation_alias="document_count")
    chunks: int = Field(validation_alias="chunk_count")
    created_at: datetime


class CollectionList(BaseModel):
    data: list[CollectionOut]


class DocumentOut(DomainView):
    id: int
    collection: str
    name: str
    version: int
    latest: bool
    content_type: str
    digest: str
    size: int
    chunks: int = Field(validation_alias="chunk_count")
    tokens: int = Field(validation_alias="token_count")
    embedding_model: str
    metadata: dict[str, Any]
    created_at: datetime


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


class SearchHitOut(DomainView):
    collection: str = Field(validation_alias=AliasPath("chunk", "collection"))
    document: str = Field(validation_alias=AliasPath("chunk", "document"))
    document_id: int = Field(validation_alias=AliasPath("chunk", "document_id"))
    version: int = Field(validation_alias=AliasPath("chunk", "version"))
    chunk: int = Field(validation_alias=AliasPath("chunk", "position"))
    text: str = Field(validation_alias=AliasPath("chunk", "text"))
    score: float
    vector_score: float | None
    keyword_score: float | None
    metadata: dict[str, Any] = Field(validation_alias=AliasPath("chunk", "metadata"))


class SearchResponse(BaseModel):
    data: list[SearchHitOut]


class DatasetOut(DomainView):
    id: int
    name: str
    version: int
    format: str
    digest: str
    size: int
    lines: int = Field(validation_alias="line_count")
    tokens: int = Field(validation_alias="token_count")
    created_at: datetime


class DatasetList(BaseModel):
    data: list[DatasetOut]


class Deleted(BaseModel):
    deleted: bool = True
