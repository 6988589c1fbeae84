"""OpenAI's files API for fine-tuning data (``/v1/files``): a file is a dataset of the data
subsystem (``file-<id>``), validated line by line on upload; only ``purpose=fine-tune``.

Every route needs the ``fine-tune`` scope and sees only the caller's tenant's files.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, File, Form, Query, Response, UploadFile
from fastapi.responses import FileResponse

from llmos.errors import InvalidRequest, NotFound, PayloadTooLarge
from llmos.security.principal import Principal
from llmos.server.auth import PrincipalDep
from llmos.server.routes.deps import KernelDep
from llmos.server.schemas.common import ErrorResponse
from llmos.server.schemas.fine_tuning import FILE_PREFIX, FileDeleted, FileList, FileObject

router = APIRouter(
    tags=["openai"],
    responses={400: {"model": ErrorResponse}, 403: {"model": ErrorResponse}, 404: {"model": ErrorResponse}},
)

UPLOAD_CHUNK = 1 << 20


def tenant_of(principal: Principal) -> str:
    principal.require("fine-tune")
    return principal.tenant


def parse_file_id(value: str, param: str = "file_id") -> int:
    """``file-<n>`` → n. Raises NotFound for anything else (worded like a missing file)."""
    digits = value.removeprefix(FILE_PREFIX)
    if not value.startswith(FILE_PREFIX) or not digits.isdigit() or not 0 < int(digits) < 2**63:
        raise NotFound(f"file {value!r} not found", param=param)
    return int(digits)


@router.post("/v1/files", response_model=FileObject)
async def upload_file(
    kernel: KernelDep,
    principal: PrincipalDep,
    file: Annotated[UploadFile, File()],
    purpose: Annotated[str, Form()],
) -> FileObject:
    """Upload JSONL for fine-tuning (OpenAI's chat format, or prompt/completion)."""
    tenant = tenant_of(principal)
    if purpose != "fine-tune":
        raise InvalidRequest(
            f"purpose {purpose!r} is not supported; llmos stores files for purpose 'fine-tune'",
            param="purpose",
        )
    limit = kernel.config.limits.max_body_bytes
    parts: list[bytes] = []
    size = 0
    while chunk := await file.read(UPLOAD_CHUNK):
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(
                f"the file is over the {limit}-byte limit (LLMOS_MAX_BODY_BYTES)", param="file"
            )
        parts.append(chunk)
    name = (file.filename or "upload.jsonl").rsplit("/", 1)[-1] or "upload.jsonl"
    return FileObject.of(await kernel.data.datasets.upload(tenant, name, b"".join(parts)))


@router.get("/v1/files", response_model=FileList)
async def list_files(
    kernel: KernelDep,
    principal: PrincipalDep,
    purpose: Annotated[str | None, Query()] = None,
) -> FileList:
    tenant = tenant_of(principal)
    if purpose not in (None, "fine-tune"):
        return FileList(data=[])
    datasets = await kernel.data.datasets.list(tenant)
    return FileList(data=[FileObject.of(d) for d in sorted(datasets, key=lambda d: -d.id)])


@router.get("/v1/files/{file_id}", response_model=FileObject)
async def retrieve_file(file_id: str, kernel: KernelDep, principal: PrincipalDep) -> FileObject:
    tenant = tenant_of(principal)
    return FileObject.of(await kernel.data.datasets.get(tenant, parse_file_id(file_id)))


@router.get("/v1/files/{file_id}/content", response_class=Response)
async def file_content(file_id: str, kernel: KernelDep, principal: PrincipalDep) -> Response:
    tenant = tenant_of(principal)
    path = await kernel.data.datasets.path(tenant, parse_file_id(file_id))
    return FileResponse(path, media_type="application/jsonl")


@router.delete("/v1/files/{file_id}", response_model=FileDeleted)
async def delete_file(file_id: str, kernel: KernelDep, principal: PrincipalDep) -> FileDeleted:
    tenant = tenant_of(principal)
    await kernel.data.datasets.delete(tenant, parse_file_id(file_id))
    return FileDeleted(id=file_id)
