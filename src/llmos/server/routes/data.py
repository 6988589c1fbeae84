"""The data API: collections, documents, search (``/api/collections``, ``/api/search``) and
fine-tuning datasets (``/api/datasets``). Every route needs the ``data`` scope and sees only
the caller's tenant: another tenant's collection, document or dataset is a 404.

Uploading a document and searching spend tokens (embedding chunks, embedding the query): they
are metered like chat, so the key's model patterns apply to the collection's embedding model (a
model the key may not use is a 404 worded like a missing one), and so do the tenant's and key's
rate limits and budgets, and each leaves a usage row with the tokens it spent.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request, Response
from fastapi.responses import FileResponse

from llmos.data.parsers import known_format
from llmos.domain.data import Collection, SearchMode
from llmos.errors import InvalidRequest, PayloadTooLarge
from llmos.kernel.kernel import Kernel
from llmos.security.principal import Principal
from llmos.server.auth import PrincipalDep, require_visible_model
from llmos.server.metering import admit, meter, metered
from llmos.server.routes.deps import KernelDep
from llmos.server.schemas.common import ErrorResponse
from llmos.server.schemas.data import (
    CollectionCreate,
    CollectionList,
    CollectionOut,
    DatasetList,
    DatasetOut,
    Deleted,
    DocumentList,
    DocumentOut,
    MultiSearchRequest,
    SearchHitOut,
    SearchRequest,
    SearchResponse,
)

router = APIRouter(
    prefix="/api",
    tags=["data"],
    responses={400: {"model": ErrorResponse}, 403: {"model": ErrorResponse}, 404: {"model": ErrorResponse}},
)


RowId = Annotated[int, Path(ge=1, le=2**63 - 1, description="A row id (a 64-bit database key)")]
"""Ids of documents and datasets: an id no database column can hold is a 400, not a crash."""


def _tenant(principal: Principal) -> str:
    principal.require("data")
    return principal.tenant


async def _body(request: Request, limit: int) -> bytes:
    """The request body, refused once it grows past ``limit`` (chunked uploads carry no length)."""
    parts: list[bytes] = []
    size = 0
    async for part in request.stream():
        size += len(part)
        if size > limit:
            raise PayloadTooLarge(
                f"the upload is over the {limit}-byte limit (LLMOS_MAX_BODY_BYTES)", param="body"
            )
        parts.append(part)
    return b"".join(parts)


async def usable_embedding_model(kernel: Kernel, principal: Principal, name: str) -> None:
    """Raise ModelNotFound (404, the same for both) unless ``name`` is a model that exists (or a
    catalog model, pulled on first use) and ``principal`` may use: a collection must not embed
    with a model the key cannot see."""
    require_visible_model(principal, name)
    await kernel.resolve_or_pullable(name)


async def admit_embedding(
    request: Request,
    principal: Principal,
    cols: Sequence[Collection],
    *,
    upper_bound_tokens: int,
    embeds: bool = True,
) -> None:
    """Admit a request that embeds with ``cols``' models (or, ``embeds`` False, only searches
    them by keyword): model patterns, limits and budgets, as for chat. Tokens it spends go to
    its usage row through ``meter(request).charge``."""
    models = list(dict.fromkeys(c.embedding_model for c in cols)) if embeds else []
    for model in models:
        require_visible_model(principal, model)
    await admit(
        request,
        principal,
        scope="data",
        model=models[0] if models else None,
        generates=False,
        upper_bound_tokens=upper_bound_tokens if embeds else 0,
    )


def _query_bound(query: str) -> int:
    # Every token of the query stands for at least one UTF-8 byte; a few special tokens more.
    return len(query.encode("utf-8", errors="replace")) + 16


def _metadata(raw: str | None) -> dict[str, Any]:
    if not raw:
        return {}
    try:
        value = json.loads(raw)
    except json.JSONDecodeError:
        raise InvalidRequest("metadata must be a JSON object", param="metadata") from None
    if not isinstance(value, dict):
        raise InvalidRequest("metadata must be a JSON object", param="metadata")
    return value


# ---- collections ---------------------------------------------------------------------------


@router.get("/collections", response_model=CollectionList)
async def list_collections(kernel: KernelDep, principal: PrincipalDep) -> CollectionList:
    cols = await kernel.data.list_collections(_tenant(principal))
    return CollectionList(data=[CollectionOut.model_validate(c) for c in cols])


@router.post("/collections", response_model=CollectionOut, status_code=201)
async def create_collection(
    body: CollectionCreate, kernel: KernelDep, principal: PrincipalDep
) -> CollectionOut:
    tenant = _tenant(principal)
    await usable_embedding_model(
        kernel, principal, body.embedding_model or kernel.data.default_embedding_model
    )
    col = await kernel.data.create_collection(
        tenant,
        body.name,
        embedding_model=body.embedding_model,
        chunk_tokens=body.chunk_tokens,
        chunk_overlap=body.chunk_overlap,
        description=body.description,
    )
    return CollectionOut.model_validate(col)


@router.get("/collections/{collection}", response_model=CollectionOut)
async def get_collection(collection: str, kernel: KernelDep, principal: PrincipalDep) -> CollectionOut:
    return CollectionOut.model_validate(await kernel.data.get_collection(_tenant(principal), collection))


@router.delete("/collections/{collection}", response_model=Deleted)
async def delete_collection(collection: str, kernel: KernelDep, principal: PrincipalDep) -> Deleted:
    await kernel.data.delete_collection(_tenant(principal), collection)
    return Deleted()


# ---- documents -----------------------------------------------------------------------------


@router.post(
    "/collections/{collection}/documents",
    response_model=DocumentOut,
    status_code=201,
    dependencies=[metered("document")],
)
async def add_document(
    collection: str,
    request: Request,
    kernel: KernelDep,
    principal: PrincipalDep,
    name: Annotated[str, Query(min_length=1, max_length=200, description="The document's name")],
    content_type: Annotated[
        str | None, Query(description="txt, md, html, pdf, json, jsonl or a MIME type; default: by name")
    ] = None,
    metadata: Annotated[str | None, Query(description="A JSON object stored with the document")] = None,
) -> DocumentOut:
    """Upload a document as the raw request body; the same name again makes a new version."""
    tenant = _tenant(principal)
    meta = _metadata(metadata)
    col = await kernel.data.get_collection(tenant, collection)
    data = await _body(request, kernel.config.limits.max_body_bytes)
    # Chunks overlap (at most a quarter each) and carry a few special tokens: twice the bytes
    # plus a margin bounds what embedding them can take.
    await admit_embedding(request, principal, [col], upper_bound_tokens=2 * len(data) + 1024)
    if content_type is None:
        # The body's Content-Type counts only when it names a format: curl and many clients
        # send a generic one for any file, and the document's name then decides.
        content_type = known_format(request.headers.get("content-type"))
    doc = await kernel.data.add_document(
        tenant, collection, name, data, content_type=content_type, metadata=meta, spent=meter(request).charge
    )
    return DocumentOut.model_validate(doc)


@router.get("/collections/{collection}/documents", response_model=DocumentList)
async def list_documents(
    collection: str,
    kernel: KernelDep,
    principal: PrincipalDep,
    name: str | None = None,
    all_versions: bool = False,
) -> DocumentList:
    docs = await kernel.data.list_documents(
        _tenant(principal), collection, name=name, all_versions=all_versions
    )
    return DocumentList(data=[DocumentOut.model_validate(d) for d in docs])


@router.get("/collections/{collection}/documents/{document_id}", response_model=DocumentOut)
async def get_document(
    collection: str, document_id: RowId, kernel: KernelDep, principal: PrincipalDep
) -> DocumentOut:
    return DocumentOut.model_validate(
        await kernel.data.get_document(_tenant(principal), collection, document_id)
    )


@router.delete("/collections/{collection}/documents/{document_id}", response_model=DocumentOut)
async def delete_document(
    collection: str, document_id: RowId, kernel: KernelDep, principal: PrincipalDep
) -> DocumentOut:
    """Delete one version (the previous version, if any, becomes the searched one)."""
    return DocumentOut.model_validate(
        await kernel.data.delete_document(_tenant(principal), collection, document_id)
    )


@router.delete("/collections/{collection}/documents", response_model=DocumentList)
async def delete_named(
    collection: str,
    kernel: KernelDep,
    principal: PrincipalDep,
    name: Annotated[str, Query(min_length=1, description="Delete every version of this document")],
) -> DocumentList:
    gone = await kernel.data.delete_named(_tenant(principal), collection, name)
    return DocumentList(data=[DocumentOut.model_validate(d) for d in gone])


# ---- search --------------------------------------------------------------------------------


async def _search(
    request: Request,
    kernel: Kernel,
    principal: Principal,
    collections: list[str],
    body: SearchRequest | MultiSearchRequest,
) -> SearchResponse:
    tenant = _tenant(principal)
    mode: SearchMode = body.mode
    cols = await kernel.data.find_collections(tenant, collections)
    await admit_embedding(
        request, principal, cols, upper_bound_tokens=_query_bound(body.query), embeds=mode != "keyword"
    )
    hits = await kernel.data.search(
        tenant,
        collections,
        body.query,
        top_k=body.top_k,
        mode=mode,
        filters=body.filters,
        spent=meter(request).charge,
    )
    return SearchResponse(data=[SearchHitOut.model_validate(h) for h in hits])


@router.post(
    "/collections/{collection}/search", response_model=SearchResponse, dependencies=[metered("search")]
)
async def search_collection(
    collection: str, body: SearchRequest, request: Request, kernel: KernelDep, principal: PrincipalDep
) -> SearchResponse:
    return await _search(request, kernel, principal, [collection], body)


@router.post("/search", response_model=SearchResponse, dependencies=[metered("search")])
async def search(
    body: MultiSearchRequest, request: Request, kernel: KernelDep, principal: PrincipalDep
) -> SearchResponse:
    """Hybrid search over several collections at once (their rankings fused)."""
    return await _search(request, kernel, principal, body.collections, body)


# ---- datasets ------------------------------------------------------------------------------


@router.post("/datasets", response_model=DatasetOut, status_code=201)
async def upload_dataset(
    request: Request,
    kernel: KernelDep,
    principal: PrincipalDep,
    name: Annotated[str, Query(min_length=1, max_length=200)],
) -> DatasetOut:
    """Upload JSONL (chat or prompt/completion form) as the raw body; every line is checked."""
    tenant = _tenant(principal)
    data = await _body(request, kernel.config.limits.max_body_bytes)
    return DatasetOut.model_validate(await kernel.data.datasets.upload(tenant, name, data))


@router.get("/datasets", response_model=DatasetList)
async def list_datasets(kernel: KernelDep, principal: PrincipalDep) -> DatasetList:
    return DatasetList(
        data=[DatasetOut.model_validate(d) for d in await kernel.data.datasets.list(_tenant(principal))]
    )


@router.get("/datasets/{dataset_id}", response_model=DatasetOut)
async def get_dataset(dataset_id: RowId, kernel: KernelDep, principal: PrincipalDep) -> DatasetOut:
    return DatasetOut.model_validate(await kernel.data.datasets.get(_tenant(principal), dataset_id))


@router.get("/datasets/{dataset_id}/content", response_class=Response)
async def dataset_content(dataset_id: RowId, kernel: KernelDep, principal: PrincipalDep) -> Response:
    path = await kernel.data.datasets.path(_tenant(principal), dataset_id)
    return FileResponse(path, media_type="application/jsonl")


@router.delete("/datasets/{dataset_id}", response_model=DatasetOut)
async def delete_dataset(dataset_id: RowId, kernel: KernelDep, principal: PrincipalDep) -> DatasetOut:
    return DatasetOut.model_validate(await kernel.data.datasets.delete(_tenant(principal), dataset_id))
