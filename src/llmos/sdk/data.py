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
from typing import Any, Protocol
from urllib.parse import quote

Source = str | Path | bytes
"""A local file's path, or the document's bytes (then ``name`` is required)."""


def _pick(cls: Any, d: Mapping[str, Any]) -> dict[str, Any]:
    return {k: d[k] for k in cls.__dataclass_fields__ if k in d}


@dataclass(frozen=True)
class CollectionInfo:
    name: str
    embedding_model: str
    dimensions: int | None
    chunk_tokens: int
    chunk_overlap: int
    documents: int = 0
    chunks: int = 0
    description: str = ""
    created_at: str | None = None

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> CollectionInfo:
        return cls(**_pick(cls, d))


@dataclass(frozen=True)
class DocumentInfo:
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

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> DocumentInfo:
        return cls(**_pick(cls, d))


@dataclass(frozen=True)
class SearchHit:
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

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> SearchHit:
        return cls(**_pick(cls, d))


@dataclass(frozen=True)
class DatasetInfo:
    id: int
    name: str
    version: int
    format: str
    digest: str
    size: int
    lines: int
    tokens: int
    created_at: str | None = None

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> DatasetInfo:
        return cls(**_pick(cls, d))


@dataclass(frozen=True)
class Citation:
    document: str
    document_id: int
    chunk: int
    score: float
    collection: str = ""
    version: int = 0

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> Citation:
        return cls(**_pick(cls, d))


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


def _ask_body(
    model: str,
    question: str | Sequence[Mapping[str, Any]],
    collections: Sequence[str],
    top_k: int,
    params: Mapping[str, Any],
) -> dict[str, Any]:
    messages = (
        [{"role": "user", "content": question}] if isinstance(question, str) else [dict(m) for m in question]
    )
    return {
        "model": model,
        "messages": messages,
        "collections": list(collections),
        "retrieval": {"top_k": top_k},
        **params,
        "stream": False,
    }


def _read(source: Source, name: str | None) -> tuple[bytes, str]:
    if isinstance(source, bytes):
        if not name:
            raise ValueError("name= is required when uploading bytes")
        return source, name
    path = Path(source)
    return path.read_bytes(), name or path.name


def _doc_params(name: str, content_type: str | None, metadata: Mapping[str, Any] | None) -> dict[str, str]:
    params = {"name": name}
    if content_type:
        params["content_type"] = content_type
    if metadata:
        params["metadata"] = json.dumps(dict(metadata))
    return params


def _search_body(
    collections: str | Sequence[str], query: str, top_k: int, mode: str, filters: Mapping[str, Any] | None
) -> tuple[str, dict[str, Any]]:
    body: dict[str, Any] = {"query": query, "top_k": top_k, "mode": mode}
    if filters:
        body["filters"] = dict(filters)
    if isinstance(collections, str):
        return f"/api/collections/{quote(collections, safe='')}/search", body
    return "/api/search", {**body, "collections": list(collections)}


def _col(name: str) -> str:
    return f"/api/collections/{quote(name, safe='')}"


class _SyncRequester(Protocol):
    def _request(self, method: str, path: str, **kwargs: Any) -> Any: ...


class _AsyncRequester(Protocol):
    async def _request(self, method: str, path: str, **kwargs: Any) -> Any: ...


class Data:
    """``client.data`` on :class:`llmos.Client`."""

    def __init__(self, client: _SyncRequester) -> None:
        self._client = client

    # collections
    def create_collection(
        self,
        name: str,
        *,
        embedding_model: str | None = None,
        chunk_tokens: int | None = None,
        chunk_overlap: int | None = None,
        description: str = "",
    ) -> CollectionInfo:
        body = {
            "name": name,
            "embedding_model": embedding_model,
            "chunk_tokens": chunk_tokens,
            "chunk_overlap": chunk_overlap,
            "description": description,
        }
        return CollectionInfo.from_json(self._client._request("POST", "/api/collections", json=body))

    def list_collections(self) -> list[CollectionInfo]:
        return [CollectionInfo.from_json(c) for c in self._client._request("GET", "/api/collections")["data"]]

    def get_collection(self, name: str) -> CollectionInfo:
        return CollectionInfo.from_json(self._client._request("GET", _col(name)))

    def delete_collection(self, name: str) -> None:
        self._client._request("DELETE", _col(name))

    # documents
    def add_document(
        self,
        collection: str,
        source: Source,
        *,
        name: str | None = None,
        content_type: str | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> DocumentInfo:
        """Upload a file (or bytes) into ``collection``; the same name again is a new version."""
        data, doc_name = _read(source, name)
        params = _doc_params(doc_name, content_type, metadata)
        raw = self._client._request("POST", f"{_col(collection)}/documents", params=params, content=data)
        return DocumentInfo.from_json(raw)

    def list_documents(
        self, collection: str, *, name: str | None = None, all_versions: bool = False
    ) -> list[DocumentInfo]:
        params: dict[str, Any] = {"all_versions": str(all_versions).lower()}
        if name is not None:
            params["name"] = name
        raw = self._client._request("GET", f"{_col(collection)}/documents", params=params)
        return [DocumentInfo.from_json(d) for d in raw["data"]]

    def delete_document(self, collection: str, document_id: int) -> DocumentInfo:
        """Delete one version."""
        return DocumentInfo.from_json(
            self._client._request("DELETE", f"{_col(collection)}/documents/{int(document_id)}")
        )

    def delete_documents(self, collection: str, name: str) -> list[DocumentInfo]:
        """Delete every version of ``name``."""
        raw = self._client._request("DELETE", f"{_col(collection)}/documents", params={"name": name})
        return [DocumentInfo.from_json(d) for d in raw["data"]]

    def search(
        self,
        collections: str | Sequence[str],
        query: str,
        *,
        top_k: int = 5,
        mode: str = "hybrid",
        filters: Mapping[str, Any] | None = None,
    ) -> list[SearchHit]:
        """Ranked chunks (``mode``: hybrid, vector or keyword) of one collection or several."""
        path, body = _search_body(collections, query, top_k, mode, filters)
        return [SearchHit.from_json(h) for h in self._client._request("POST", path, json=body)["data"]]

    def ask(
        self,
        model: str,
        question: str | Sequence[Mapping[str, Any]],
        collections: Sequence[str],
        *,
        top_k: int = 4,
        **params: Any,
    ) -> Answer:
        """Chat with ``model`` over ``collections``: the best passages go into the prompt and come
        back as ``citations`` (``params``: max_tokens, temperature, ...)."""
        body = _ask_body(model, question, collections, top_k, params)
        return Answer.from_json(self._client._request("POST", "/v1/chat/completions", json=body))

    # datasets
    def upload_dataset(self, name: str, source: Source) -> DatasetInfo:
        """Upload JSONL (chat or prompt/completion form); BadRequestError lists the bad lines."""
        data, _ = _read(source, name)
        raw = self._client._request("POST", "/api/datasets", params={"name": name}, content=data)
        return DatasetInfo.from_json(raw)

    def list_datasets(self) -> list[DatasetInfo]:
        return [DatasetInfo.from_json(d) for d in self._client._request("GET", "/api/datasets")["data"]]

    def delete_dataset(self, dataset_id: int) -> DatasetInfo:
        return DatasetInfo.from_json(self._client._request("DELETE", f"/api/datasets/{int(dataset_id)}"))


class AsyncData:
    """``client.data`` on :class:`llmos.AsyncClient` (the same methods, awaited)."""

    def __init__(self, client: _AsyncRequester) -> None:
        self._client = client

    async def create_collection(
        self,
        name: str,
        *,
        embedding_model: str | None = None,
        chunk_tokens: int | None = None,
        chunk_overlap: int | None = None,
        description: str = "",
    ) -> CollectionInfo:
        body = {
            "name": name,
            "embedding_model": embedding_model,
            "chunk_tokens": chunk_tokens,
            "chunk_overlap": chunk_overlap,
            "description": description,
        }
        return CollectionInfo.from_json(await self._client._request("POST", "/api/collections", json=body))

    async def list_collections(self) -> list[CollectionInfo]:
        raw = await self._client._request("GET", "/api/collections")
        return [CollectionInfo.from_json(c) for c in raw["data"]]

    async def delete_collection(self, name: str) -> None:
        await self._client._request("DELETE", _col(name))

    async def add_document(
        self,
        collection: str,
        source: Source,
        *,
        name: str | None = None,
        content_type: str | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> DocumentInfo:
        data, doc_name = _read(source, name)
        params = _doc_params(doc_name, content_type, metadata)
        raw = await self._client._request(
            "POST", f"{_col(collection)}/documents", params=params, content=data
        )
        return DocumentInfo.from_json(raw)

    async def list_documents(
        self, collection: str, *, name: str | None = None, all_versions: bool = False
    ) -> list[DocumentInfo]:
        params: dict[str, Any] = {"all_versions": str(all_versions).lower()}
        if name is not None:
            params["name"] = name
        raw = await self._client._request("GET", f"{_col(collection)}/documents", params=params)
        return [DocumentInfo.from_json(d) for d in raw["data"]]

    async def delete_documents(self, collection: str, name: str) -> list[DocumentInfo]:
        raw = await self._client._request("DELETE", f"{_col(collection)}/documents", params={"name": name})
        return [DocumentInfo.from_json(d) for d in raw["data"]]

    async def search(
        self,
        collections: str | Sequence[str],
        query: str,
        *,
        top_k: int = 5,
        mode: str = "hybrid",
        filters: Mapping[str, Any] | None = None,
    ) -> list[SearchHit]:
        path, body = _search_body(collections, query, top_k, mode, filters)
        return [
            SearchHit.from_json(h) for h in (await self._client._request("POST", path, json=body))["data"]
        ]

    async def ask(
        self,
        model: str,
        question: str | Sequence[Mapping[str, Any]],
        collections: Sequence[str],
        *,
        top_k: int = 4,
        **params: Any,
    ) -> Answer:
        body = _ask_body(model, question, collections, top_k, params)
        return Answer.from_json(await self._client._request("POST", "/v1/chat/completions", json=body))

    async def upload_dataset(self, name: str, source: Source) -> DatasetInfo:
        data, _ = _read(source, name)
        raw = await self._client._request("POST", "/api/datasets", params={"name": name}, content=data)
        return DatasetInfo.from_json(raw)

    async def list_datasets(self) -> list[DatasetInfo]:
        return [
            DatasetInfo.from_json(d) for d in (await self._client._request("GET", "/api/datasets"))["data"]
        ]
