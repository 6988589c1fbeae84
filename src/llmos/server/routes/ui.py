"""The web console: plain files from the package's ``ui/`` folder, served at ``/ui/``.

No build step: HTML, CSS and ES modules shipped as package data. The console signs in with an
API key where auth is on and calls the same public API as any client.
"""

from __future__ import annotations

import mimetypes
from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse, RedirectResponse, Response

from llmos.errors import NotFound

UI_DIR = Path(__file__).resolve().parent.parent.parent / "ui"

router = APIRouter(include_in_schema=False)

_HEADERS = {
    # Everything the console needs comes from this server: no CDN, no inline script.
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}
_TYPES = {".js": "text/javascript", ".mjs": "text/javascript", ".css": "text/css", ".svg": "image/svg+xml"}


@router.get("/")
async def root() -> Response:
    return RedirectResponse("/ui/", status_code=307)


@router.get("/ui")
async def ui_root() -> Response:
    return RedirectResponse("/ui/", status_code=307)


@router.get("/ui/{path:path}")
async def ui_file(path: str) -> Response:
    """A console file; ``/ui/`` is the single page. Raises NotFound outside ``ui/``."""
    root = UI_DIR.resolve()
    target = (root / (path or "index.html")).resolve()
    if not target.is_relative_to(root) or not target.is_file() or target.name.startswith("."):
        raise NotFound(f"no console file {path!r}")
    media = _TYPES.get(target.suffix) or mimetypes.guess_type(target.name)[0] or "application/octet-stream"
    return FileResponse(target, media_type=media, headers=_HEADERS)
