"""Authentication: every route that acts for a caller depends on :data:`PrincipalDep`.

The security helper replaces the body of :func:`principal` with key checking (``LLMOS_AUTH``);
until then every caller is the anonymous principal of the configured ``local`` tenant.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from llmos.security.principal import Principal, anonymous
from llmos.server.routes.deps import kernel as kernel_of


def principal(request: Request) -> Principal:
    """The caller of ``request``. Raises Unauthorized for a missing or bad key where auth is on."""
    return anonymous(kernel_of(request).config.anonymous_tenant)


PrincipalDep = Annotated[Principal, Depends(principal)]
