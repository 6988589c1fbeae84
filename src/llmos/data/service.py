"""The data service: collections of documents per tenant, hybrid search, datasets.

Uploading a document parses it, cuts it into token windows, embeds every chunk (through the
injected :data:`~llmos.domain.data.Embedder`), and only then stores the document, its chunks,
their embeddings and index entries in one transaction: an upload that fails at any step leaves
nothing behind. A document uploaded again under the same name becomes a new version; the old
version stays (listed, not searched) until it is deleted.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from llmos.data.chunking import check_chunking, chunk_text
from llmos.data.datasets import DatasetService, check_name
from llmos.data.parsers import detect_format, extract_text
from llmos.data.ranking import matches, reciprocal_rank_fusion
from llmos.data.tokens import Tokenizer
from llmos.domain.data import (
    DEFAULT_CHUNK_OVERLAP,
    DEFAULT_CHUNK_TOKENS,
    DEFAULT_EMBEDDING_MODEL,
    ChunkHit,
    Collection,
    Document,
    Embedder,
    Filters,
    NewChunk,
    NewDocument,
    SearchHit,
    SearchMode,
    Spent,
)
from llmos.errors import InvalidRequest, PayloadTooLarge
from llmos.storage.documents import DocumentStore

log = logging.getLogger(__name__)

EMBED_BATCH = 64
MAX_TOP_K = 100
MAX_COLLECTIONS = 16


class DataService:
    """Every data operation a route, the kernel or a test calls; none knows about HTTP."""

    def __init__(
        self,
        documents: DocumentStore,
        datasets: DatasetService,
        embedder: Embedder,
        tokenizer: Tokenizer,
        *,
        default_embedding_model: str = DEFAULT_EMBEDDING_MODEL,
        max_document_bytes: int = 256 << 20,
    ) -> None:
        self.documents = documents
        self.datasets = datasets
        self.embedder = embedder
        self.tokenizer = tokenizer
        self.default_embedding_model = default_embedding_model
        self.max_document_bytes = max_document_bytes

    # ---- collections ---------------------------------------------------------------------

    async def create_collection(
        self,
        tenant: str,
        name: str,
        *,
        embedding_model: str | None = None,
        chunk_tokens: int | None = None,
        chunk_overlap: int | None = None,
        description: str = "",
    ) -> Collection:
        """Raises InvalidRequest for a bad name or chunking, Conflict when it exists."""
        name = check_name(name, "collection", path_like=False)
        tokens = chunk_tokens if chunk_tokens is not None else DEFAULT_CHUNK_TOKENS
        overlap = chunk_overlap if chunk_overlap is not None else min(DEFAULT_CHUNK_OVERLAP, tokens // 4)
        check_chunking(tokens, overlap)
        return await asyncio.to_thread(
            self.documents.create_collection,
            tenant,
            name,
            embedding_model=embedding_model or self.default_embedding_model,
            chunk_tokens=tokens,
            chunk_overlap=overlap,
            description=description,
        )

    async def list_collections(self, tenant: str) -> list[Collection]:
        return await asyncio.to_thread(self.documents.list_collections, tenant)

    async def get_collection(self, tenant: str, name: str) -> Collection:
        return await asyncio.to_thread(self.documents.get_collection, tenant, name)

    async def delete_collection(self, tenant: str, name: str) -> None:
        await asyncio.to_thread(self.documents.delete_collection, tenant, name)

    # ---- documents -----------------------------------------------------------------------

    async def find_collections(self, tenant: str, names: Sequence[str]) -> list[Collection]:
        """The named collections of ``tenant`` (without counts). Raises NotFound for a missing one."""
        return await asyncio.to_thread(self.documents.find_collections, tenant, list(dict.fromkeys(names)))

    async def _embed(
        self, model: str, texts: list[str], tenant: str, spent: Spent | None = None
    ) -> list[list[float]]:
        out: list[list[float]] = []
        for start in range(0, len(texts), EMBED_BATCH):
            batch = texts[start : start + EMBED_BATCH]
            embedded = await self.embedder(model, batch, tenant)
            if spent is not None:
                spent(embedded.tokens)
            vectors = embedded.vectors
            if len(vectors) != len(batch):
                raise InvalidRequest(
                    f"embedding model {model!r} returned {len(vectors)} vectors for {len(batch)} texts"
                )
            out.extend(vectors)
        dims = {len(v) for v in out}
        if len(dims) > 1 or 0 in dims:
            raise InvalidRequest(
                f"embedding model {model!r} returned vectors of differing sizes {sorted(dims)}"
            )
        if any(not math.isfinite(x) for v in out for x in v):
            raise InvalidRequest(f"embedding model {model!r} returned a non-finite value")
        return out

    async def add_document(
        self,
        tenant: str,
        collection: str,
        name: str,
        data: bytes,
        *,
        content_type: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        spent: Spent | None = None,
    ) -> Document:
        """Parse, chunk, embed and store ``data`` as the newest version of ``name``; ``spent``
        hears of the embedding tokens as they are spent.

        Raises NotFound (collection), InvalidRequest (bad bytes, no text, embedding mismatch),
        PayloadTooLarge; whatever fails, nothing of this upload is stored.
        """
        name = check_name(name, "document")
        if len(data) > self.max_document_bytes:
            raise PayloadTooLarge(f"{name} is {len(data)} bytes; the limit is {self.max_document_bytes}")
        col = await self.get_collection(tenant, collection)
        fmt = detect_format(name, content_type)
        text = await asyncio.to_thread(extract_text, data, name, fmt)
        pieces = await asyncio.to_thread(
            chunk_text, text, self.tokenizer, col.chunk_tokens, col.chunk_overlap
        )
        if not pieces:
            raise InvalidRequest(f"{name} has no text to index (a scanned PDF needs OCR first)", param="file")
        vectors = await self._embed(col.embedding_model, [p.text for p in pieces], tenant, spent)
        doc = NewDocument(
            name=name,
            content_type=fmt,
            digest=hashlib.sha256(data).hexdigest(),
            size=len(data),
            embedding_model=col.embedding_model,
            metadata={**(metadata or {}), "source": name, "format": fmt},
            chunks=tuple(
                NewChunk(
                    position=i,
                    text=p.text,
                    token_count=p.token_count,
                    start=p.start,
                    end=p.end,
                    embedding=tuple(v),
                )
                for i, (p, v) in enumerate(zip(pieces, vectors, strict=True))
            ),
        )
        stored = await asyncio.to_thread(self.documents.add_document, tenant, collection, doc)
        log.info(
            "stored %s v%d in %s/%s: %d chunks", name, stored.version, tenant, collection, stored.chunk_count
        )
        return stored

    async def list_documents(
        self, tenant: str, collection: str, *, name: str | None = None, all_versions: bool = False
    ) -> list[Document]:
        return await asyncio.to_thread(
            self.documents.list_documents, tenant, collection, name=name, all_versions=all_versions
        )

    async def get_document(self, tenant: str, collection: str, document_id: int) -> Document:
        return await asyncio.to_thread(self.documents.get_document, tenant, collection, document_id)

    async def delete_document(self, tenant: str, collection: str, document_id: int) -> Document:
        return await asyncio.to_thread(self.documents.delete_document, tenant, collection, document_id)

    async def delete_named(self, tenant: str, collection: str, name: str) -> list[Document]:
        return await asyncio.to_thread(self.documents.delete_named, tenant, collection, name)

    # ---- search --------------------------------------------------------------------------

    async def search(
        self,
        tenant: str,
        collections: Sequence[str],
        query: str,
        *,
        top_k: int = 5,
        mode: SearchMode = "hybrid",
        filters: Filters | None = None,
        spent: Spent | None = None,
    ) -> list[SearchHit]:
        """The ``top_k`` best chunks of the latest document versions in ``collections``
        (``spent`` hears of the tokens embedding the query takes).

        ``hybrid`` fuses vector and keyword rankings by reciprocal rank fusion (``score`` is the
        fused score); ``vector`` ranks by cosine similarity, ``keyword`` by full-text relevance.
        Raises NotFound for an unknown collection, InvalidRequest for a bad query.
        """
        if not query.strip():
            raise InvalidRequest("the search query is empty", param="query")
        if not 1 <= top_k <= MAX_TOP_K:
            raise InvalidRequest(f"top_k must be between 1 and {MAX_TOP_K}", param="top_k")
        if not collections or len(collections) > MAX_COLLECTIONS:
            raise InvalidRequest(f"name 1 to {MAX_COLLECTIONS} collections", param="collections")
        cols = await asyncio.to_thread(
            self.documents.find_collections, tenant, list(dict.fromkeys(collections))
        )
        store = self.documents
        candidates = max(top_k * 4, 20) if not filters else max(top_k * 10, 50)
        allowed: set[int] | None = None
        if filters:
            latest = await asyncio.to_thread(store.latest_documents, cols)
            allowed = {doc_id for doc_id, meta in latest if matches(meta, filters)}
            if not allowed:
                return []
        rankings: list[list[tuple[int, float]]] = []
        vector_scores: dict[int, float] = {}
        keyword_scores: dict[int, float] = {}
        if mode in ("hybrid", "vector"):
            for group in _by_model(cols):
                qv = np.asarray(
                    (await self._embed(group[0].embedding_model, [query], tenant, spent))[0], dtype=np.float32
                )
                if len(qv) != group[0].dimensions:
                    raise InvalidRequest(
                        f"the query embedding has {len(qv)} dimensions; collection {group[0].name!r} has "
                        f"{group[0].dimensions}"
                    )
                hits = await asyncio.to_thread(store.vector_search, group, qv, candidates)
                if allowed is not None:
                    hits = await self._filtered(group, qv, hits, allowed, candidates, top_k)
                rankings.append(hits)
                vector_scores.update(hits)
        if mode in ("hybrid", "keyword"):
            hits = await asyncio.to_thread(store.keyword_search, cols, query, candidates)
            if allowed is not None:
                chunks = await asyncio.to_thread(store.chunks, [i for i, _ in hits])
                hits = [h for h in hits if h[0] in chunks and chunks[h[0]].document_id in allowed]
            rankings.append(hits)
            keyword_scores.update(hits)
        if mode == "hybrid":
            fused = reciprocal_rank_fusion([[i for i, _ in r] for r in rankings])
        else:
            fused = sorted((h for r in rankings for h in r), key=lambda h: -h[1])
        top = fused[:top_k]
        details = await asyncio.to_thread(store.chunks, [i for i, _ in top])
        return [
            SearchHit(
                chunk=details[i],
                score=score,
                vector_score=vector_scores.get(i),
                keyword_score=keyword_scores.get(i),
            )
            for i, score in top
            if i in details
        ]

    async def _filtered(
        self,
        group: list[Collection],
        qv: np.ndarray[Any, np.dtype[np.float32]],
        hits: list[tuple[int, float]],
        allowed: set[int],
        candidates: int,
        top_k: int,
    ) -> list[tuple[int, float]]:
        chunks: dict[int, ChunkHit] = await asyncio.to_thread(self.documents.chunks, [i for i, _ in hits])
        kept = [h for h in hits if h[0] in chunks and chunks[h[0]].document_id in allowed]
        if len(kept) < top_k and len(hits) >= candidates:
            # The filter removed most of the index's candidates: rank the allowed documents exactly.
            kept = await asyncio.to_thread(
                self.documents.exact_search, group, qv, candidates, sorted(allowed)
            )
        return kept


def _by_model(cols: Sequence[Collection]) -> list[list[Collection]]:
    groups: dict[tuple[str, int], list[Collection]] = {}
    for c in cols:
        if c.dimensions is not None:
            groups.setdefault((c.embedding_model, c.dimensions), []).append(c)
    return list(groups.values())
