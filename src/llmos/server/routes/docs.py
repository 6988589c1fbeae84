"""The API's own documentation: ``/openapi.json``, ``/docs`` (Swagger UI), ``/redoc``.

Served as ordinary routes, so the app-wide key check guards them like every other route: where
keys are required the schema is for callers that hold one (``curl -H 'Authorization: Bearer
sk-llmos-…' …/openapi.json``); with auth off (a local server) the pages work in a browser.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse

router = APIRouter(include_in_schema=False)
OPENAPI_URL = "/openapi.json"


@router.get(OPENAPI_URL)
async def openapi(request: Request) -> dict[str, Any]:
    return request.app.openapi()  # type: ignore[no-any-return]


@router.get("/docs")
async def swagger_ui(request: Request) -> HTMLResponse:
    return get_swagger_ui_html(openapi_url=OPENAPI_URL, title=f"{request.app.title} - API")


@router.get("/redoc")
async def redoc(request: Request) -> HTMLResponse:
    return get_redoc_html(openapi_url=OPENAPI_URL, title=f"{request.app.title} - API")
