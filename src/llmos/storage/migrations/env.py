"""Alembic environment: runs on the engine handed over by :func:`llmos.storage.migrate.upgrade`."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Engine

from llmos.storage.rows import Base

engine = context.config.attributes.get("engine")
if not isinstance(engine, Engine):
    raise RuntimeError("llmos migrations run through llmos.storage.migrate.upgrade(engine)")

with engine.connect() as connection:
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()
