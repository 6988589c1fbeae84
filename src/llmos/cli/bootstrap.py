"""The CLI's one local path: the first admin key, made on the database itself.

Every other command talks to a server through the SDK. This one cannot always: before any
server runs there is nobody to ask, and a server that requires keys refuses a caller that has
none. So ``llmos keys create --admin`` makes the key here when no server answers, when the
server answers 401 and no ``LLMOS_API_KEY`` is set, or when ``--local`` asks for it (whoever can
write the database owns the server anyway).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta


@dataclass(frozen=True)
class LocalKey:
    """The admin key made here, as ``keys create`` prints it."""

    id: str
    prefix: str
    tenant: str
    scopes: tuple[str, ...]
    models: tuple[str, ...]
    expires_at: str | None
    key: str


def create_admin_key(name: str = "", expires_in: int | None = None) -> LocalKey:
    """An admin key of the anonymous tenant on ``LLMOS_HOME``'s (or ``LLMOS_DATABASE_URL``'s)
    database, migrated first if need be. Raises what the security service raises."""
    # Imported here: only this command, and only without a server, opens the database.
    from llmos.config import load_config
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
    return LocalKey(
        id=key.id,
        prefix=key.prefix,
        tenant=key.tenant,
        scopes=tuple(key.scopes),
        models=tuple(key.models),
        expires_at=key.expires_at.isoformat() if key.expires_at else None,
        key=secret,
    )
