"""Authentication: every route that acts for a caller depends on :data:`PrincipalDep`.

:func:`principal` reads ``Authorization: Bearer sk-llmos-…`` and asks the kernel's security
service who that is (``LLMOS_AUTH``: keys are required when the server binds beyond loopback,
or always, or never). Without a key where auth is optional, the caller is the anonymous
principal of the configured ``local`` tenant (or of the tenant ``X-LLMOS-Tenant`` names).
:func:`require_caller` runs it for every route of the app except the public ones (health,
readiness, metrics, the web console's static files), so no route is left open by omission.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from llmos.kernel.retrieval import require_visible_model as require_visible_model  # re-exported for routes
from llmos.security.principal import Principal
from llmos.server.meta import TENANT_HEADER
from llmos.server.state import kernel as kernel_of

PUBLIC_PATHS = frozenset({"/health", "/ready", "/metrics", "/", "/favicon.ico"})
PUBLIC_PREFIXES = ("/ui",)
"""Served without a key: liveness, readiness, Prometheus metrics and the console's static files
(the console's own API calls carry the key)."""

bearer = HTTPBearer(
    auto_error=False,
    scheme_name="llmosKey",
    description="An llmos API key: `Authorization: Bearer sk-llmos-…`",
)
Credentials = Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]


def is_public(path: str) -> bool:
    return path in PUBLIC_PATHS or any(path == p or path.startswith(p + "/") for p in PUBLIC_PREFIXES)


def principal(request: Request, credentials: Credentials) -> Principal:
    """The caller of ``request``. Raises Unauthorized for a missing or bad key where auth is on,
    and for an unknown, revoked or expired ``sk-llmos-`` key in any mode."""
    cached = getattr(request.state, "principal", None)
    if isinstance(cached, Principal):
        return cached
    token = credentials.credentials if credentials is not None else None
    found = kernel_of(request).security.authenticate(token, tenant=request.headers.get(TENANT_HEADER))
    request.state.principal = found
    return found


def require_caller(request: Request, credentials: Credentials) -> None:
    """The app-wide guard: authenticate every non-public request (the result is cached for routes)."""
    if not is_public(request.url.path):
        principal(request, credentials)


PrincipalDep = Annotated[Principal, Depends(principal)]
