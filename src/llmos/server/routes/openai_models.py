"""``GET /v1/models`` and ``GET /v1/models/{id}``."""

from __future__ import annotations

from fastapi import APIRouter

from llmos.registry.manifest import Manifest
from llmos.server.routes.deps import KernelDep
from llmos.server.schemas.common import ErrorResponse
from llmos.server.schemas.models import ModelList, ModelObject

router = APIRouter(tags=["openai"])


def _model(m: Manifest) -> ModelObject:
    return ModelObject(id=m.name, created=int(m.created_at.timestamp()) if m.created_at else 0)


@router.get("/v1/models", response_model=ModelList)
async def list_models(kernel: KernelDep) -> ModelList:
    return ModelList(data=[_model(m) for m in await kernel.list_models()])


@router.get("/v1/models/{model:path}", response_model=ModelObject, responses={404: {"model": ErrorResponse}})
async def retrieve_model(model: str, kernel: KernelDep) -> ModelObject:
    manifest = await kernel.resolve(model)
    return ModelObject(id=model, created=_model(manifest).created)
