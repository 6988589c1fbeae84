"""``GET /v1/models`` and ``GET /v1/models/{id}``.

A key sees the models its patterns allow, and nothing else: another model is a 404, exactly
like one that does not exist. Any key that may use models (``inference``, ``embeddings`` or
``models:read``) may list them.
"""

from __future__ import annotations

from fastapi import APIRouter

from llmos.domain.manifest import Manifest
from llmos.errors import Forbidden
from llmos.security.principal import Principal
from llmos.server.auth import PrincipalDep, require_visible_model
from llmos.server.routes.deps import KernelDep
from llmos.server.schemas.common import ErrorResponse
from llmos.server.schemas.models import ModelList, ModelObject

router = APIRouter(tags=["openai"])

LISTING_SCOPES = ("inference", "embeddings", "models:read")


def _model(m: Manifest) -> ModelObject:
    return ModelObject(id=m.name, created=int(m.created_at.timestamp()) if m.created_at else 0)


def _require_listing(principal: Principal) -> None:
    if not any(principal.allows(s) for s in LISTING_SCOPES):
        raise Forbidden("this API key lacks the 'models:read' scope")


@router.get("/v1/models", response_model=ModelList)
async def list_models(kernel: KernelDep, principal: PrincipalDep) -> ModelList:
    _require_listing(principal)
    return ModelList(data=[_model(m) for m in await kernel.list_models() if principal.allows_model(m.name)])


@router.get("/v1/models/{model:path}", response_model=ModelObject, responses={404: {"model": ErrorResponse}})
async def retrieve_model(model: str, kernel: KernelDep, principal: PrincipalDep) -> ModelObject:
    _require_listing(principal)
    require_visible_model(principal, model)
    manifest = await kernel.resolve(model)
    if "@" in model:  # a digest reference: the name it is registered under decides
        require_visible_model(principal, manifest.name)
    return ModelObject(id=model, created=_model(manifest).created)
