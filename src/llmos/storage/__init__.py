"""Persistence: the database engine, migrations and repositories that return domain objects.

ORM rows (``rows.py``) never leave this package; callers get :mod:`llmos.registry.manifest`
objects and other domain types from the repositories.
"""

from __future__ import annotations

from llmos.storage.db import Database, make_engine, open_database
from llmos.storage.manifests import ManifestRepository

__all__ = ["Database", "ManifestRepository", "make_engine", "open_database"]
