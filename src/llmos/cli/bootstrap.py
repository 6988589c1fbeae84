"""The CLI's one local path: the first admin key, made on the database itself.

Every other command talks to a server through the SDK. This one cannot always: before any
server runs there is nobody to ask, and a server that requires keys refuses a caller that has
none. So ``llmos keys create --admin`` makes the key here when no server answers, when the
server answers 401 and no ``LLMOS_API_KEY`` is set, or when ``--local`` asks for it (whoever can
write the database owns the server anyway).
"""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from llmos.sdk.security import ApiKey


def create_admin_key(name: str = "", expires_in: int | None = None) -> ApiKey:
    """An admin key of the anonymous tenant on ``LLMOS_HOME``'s (or ``LLMOS_DATABASE_URL``'s)
    database, migrated first if need be. Raises what the security service raises."""
    # Imported here: only this command, and only without a server, opens the database.
    from llmos.config import load_config
    from llmos.sdk.security import ApiKey
    from llmos.security import service as svc
    from llmos.storage.db import open_database

    config = load_config()
    database = open_database(config)
    try:
        security = svc.Security(config, database)
        expires = security.now() + timedelta(seconds=expires_in) if expires_in else None
        key, secret = security.create_key(svc.local_admin(config), name=name, expires_at=expires, admin=True)
    finally:
        database.dispose()
    return ApiKey(  # as the server would have answered
        id=key.id,
        prefix=key.prefix,
        tenant=key.tenant,
        name=key.name,
        scopes=tuple(key.scopes),
        models=tuple(key.models),
        expires_at=key.expires_at.isoformat() if key.expires_at else None,
        key=secret,
    )
