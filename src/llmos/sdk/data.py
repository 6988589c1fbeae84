"""``client.data``: collections of documents, hybrid search and fine-tuning datasets.

client.data.create_collection("handbook")
client.data.add_document("handbook", "leave-policy.pdf")
for hit in client.data.search("handbook", "how many days of leave?"):
    print(hit.document, hit.score, hit.text)
client.chat("smollm2:135m", [{"role": "user", "content": "..."}], collections=["handbook"])
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from llmos.sdk._core import Call, JsonRecord, clean, nothing, rows, segment

Source = str | Path | bytes
"""A local file's path, or the document's bytes (then ``name`` is required)."""


@dataclass(frozen=True)
class CollectionInfo(JsonRecord):
    name: str
    embedding_model: str
    dimensions: int | None
    chunk_tokens: int
    chunk_overlap: int
    documents: int = 0
    chunks: int = 0
    description: str = ""
    created_at: str | None = None


@dataclass(frozen=True)
class DocumentInfo(JsonRecord):
    id: int
    collection: str
    name: str
    version: int
    latest: bool
    content_type: str
    size: int
    chunks: int
    tokens: int
    digest: str = ""
    embedding_model: str = ""
    metadata: dict[str, Any] = field(default_factory=dict)
    created_at: str | None = None


@dataclass(frozen=True)
class SearchHit(JsonRecord):
    collection: str
    document: str
    document_id: int
    version: int
    chunk: int
    text: str
    score: float
    vector_score: float | None = None
    keyword_score: float | None = None
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class DatasetInfo(JsonRecord):
    id: int
    name: str
    version: int
    format: str
    digest: str
    size: int
    lines: int
    tokens: int
    created_at: str | None = None


@dataclass(frozen=True)
class Citation(JsonRecord):
    document: str
    document_id: int
    chunk: int
    score: float
    collection: str = ""
    version: int = 0


@dataclass(frozen=True)
class Answer:
    """A retrieval-augmented chat answer: the reply and the passages it was given."""

    text: str
    citations: list[Citation]
    finish_reason: str | None
    model: str
    prompt_tokens: int = 0
    completion_tokens: int = 0

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> Answer:
        choices = d.get("choices") or [{}]
        usage = d.get("usage") or {}
        return cls(
            text=str((choices[0].get("message") or {}).get("content") or ""),
            citations=[Citation.from_json(c) for c in d.get("citations") or []],
            finish_reason=choices[0].get("finish_reason"),
            model=str(d.get("model", "")),
            prompt_tokens=int(usage.get("prompt_tokens", 0)),
            completion_tokens=int(usage.get("completion_tokens", 0)),
        )


def _read(source: Source, name: str | None) -> tuple[bytes, str]:
    if isinstance(source, bytes):
        if not name:
            raise ValueError("name= is required when uploading bytes")
        return source, name
    path = Path(source)
    return path.read_bytes(), name or path.name


def _col(name: str) -> str:
    return f"/api/collections/{segment(name)}"


# ---- collections -----------------------------------------------------------------------------


def create_collection(
    name: str,
    embedding_model: str | None,
    chunk_tokens: int | None,
    chunk_overlap: int | None,
    description: str,
) -> Call[CollectionInfo]:
    body = {
        "name": name,
        "embedding_model": embedding_model,
        "chunk_tokens": chunk_tokens,
        "chunk_overlap": chunk_overlap,
        "description": description,
    }
    return Call("POST", "/api/collections", CollectionInfo.from_json, json=body)


def list_collections() -> Call[list[CollectionInfo]]:
    return Call("GET", "/api/collections", rows(CollectionInfo.from_json))


def get_collection(name: str) -> Call[CollectionInfo]:
    return Call("GET", _col(name), CollectionInfo.from_json)


def delete_collection(name: str) -> Call[None]:
    return Call("DELETE", _col(name), nothing)


# ---- documents -------------------------------------------------------------------------------


def add_document(
    collection: str,
    source: Source,
    name: str | None,
    content_type: str | None,
    metadata: Mapping[str, Any] | None,
) -> Call[DocumentInfo]:
    data, doc_name = _read(source, name)
    params = clean(
        {
            "name": doc_name,
            "content_type": content_type or None,
            "metadata": json.dumps(dict(metadata)) if metadata else None,
        }
    )
    return Call("POST", f"{_col(collection)}/documents", DocumentInfo.from_json, params=params, content=data)


def list_documents(collection: str, name: str | None, all_versions: bool) -> Call[list[DocumentInfo]]:
    params = clean({"all_versions": str(all_versions).lower(), "name": name})
    return Call("GET", f"{_col(collection)}/documents", rows(DocumentInfo.from_json), params=params)


def delete_document(collection: str, document_id: int) -> Call[DocumentInfo]:
    return Call("DELETE", f"{_col(collection)}/documents/{int(document_id)}", DocumentInfo.from_json)


def delete_documents(collection: str, name: str) -> Call[list[DocumentInfo]]:
    path = f"{_col(collection)}/documents"
    return Call("DELETE", path, rows(DocumentInfo.from_json), params={"name": name})


def search(
    collections: str | Sequence[str], query: str, top_k: int, mode: str, filters: Mapping[str, Any] | None
) -> Call[list[SearchHit]]:
    body: dict[str, Any] = clean({"query": query, "top_k": top_k, "mode": mode, "filters": filters or None})
    if isinstance(collections, str):
        return Call("POST", f"{_col(collections)}/search", rows(SearchHit.from_json), json=body)
    body["collections"] = list(collections)
    return Call("POST", "/api/search", rows(SearchHit.from_json), json=body)


def ask(
    model: str,
    question: str | Sequence[Mapping[str, Any]],
    collections: Sequence[str],
    top_k: int,
    params: Mapping[str, Any],
) -> Call[Answer]:
    history = (
        [{"role": "user", "content": question}] if isinstance(question, str) else [dict(m) for m in question]
    )
    body = {
        "model": model,
        "messages": history,
        "collections": list(collections),
        "retrieval": {"top_k": top_k},
        **params,
        "stream": False,
    }
    return Call("POST", "/v1/chat/completions", Answer.from_json, json=body)


# ---- datasets --------------------------------------------------------------------------------


def upload_dataset(name: str, source: Source) -> Call[DatasetInfo]:
    data, _ = _read(source, name)
    return Call("POST", "/api/datasets", DatasetInfo.from_json, params={"name": name}, content=data)


def list_datasets() -> Call[list[DatasetInfo]]:
    return Call("GET", "/api/datasets", rows(DatasetInfo.from_json))


def delete_dataset(dataset_id: int) -> Call[DatasetInfo]:
    return Call("DELETE", f"/api/datasets/{int(dataset_id)}", DatasetInfo.from_json)
