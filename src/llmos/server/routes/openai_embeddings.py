"""``POST /v1/embeddings``: OpenAI's embeddings endpoint."""

from __future__ import annotations

import base64
import sys
from array import array

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse

from llmos.kernel.types import RequestMeta
from llmos.server.auth import PrincipalDep
from llmos.server.meta import capped, request_id
from llmos.server.metering import admit, meter, metered
from llmos.server.routes.deps import KernelDep
from llmos.server.schemas.common import ErrorResponse
from llmos.server.schemas.embeddings import EmbeddingList, EmbeddingRequest

router = APIRouter(tags=["openai"])


def encode_base64(vector: list[float]) -> str:
    """Little-endian float32 bytes, base64-encoded (what OpenAI's clients decode)."""
    packed = array("f", vector)
    if sys.byteorder != "little":
        packed.byteswap()
    return base64.b64encode(packed.tobytes()).decode("ascii")


@router.post(
    "/v1/embeddings",
    response_model=EmbeddingList,
    responses={
        400: {"model": ErrorResponse},
        403: {"model": ErrorResponse},
        404: {"model": ErrorResponse},
        501: {"model": ErrorResponse},
    },
    dependencies=[metered("embedding")],
)
async def create_embeddings(
    body: EmbeddingRequest, request: Request, kernel: KernelDep, principal: PrincipalDep
) -> Response:
    # Scope, model pattern and the tenant's limits; the metering middleware writes the usage row.
    grant = await admit(
        request, principal, scope="embeddings", model=body.model, user=body.user, generates=False
    )
    caller = meter(request).principal or principal
    meta = RequestMeta(request_id=request_id(request), tenant=caller.tenant, keep_alive=body.keep_alive)
    meta, lowered = capped(meta, grant.urgency_ceiling)
    result = await kernel.embed(body.model, body.inputs(), meta, dimensions=body.dimensions)
    meter(request).report(model=body.model, digest=result.digest, prompt_tokens=result.prompt_tokens)
    as_base64 = body.encoding_format == "base64"
    # Built as plain data: thousands of vectors need no second validation on the way out.
    payload = {
        "object": "list",
        "data": [
            {"object": "embedding", "index": i, "embedding": encode_base64(v) if as_base64 else v}
            for i, v in enumerate(result.vectors)
        ],
        "model": body.model,
        "usage": {"prompt_tokens": result.prompt_tokens, "total_tokens": result.prompt_tokens},
    }
    return JSONResponse(payload, headers=lowered)
