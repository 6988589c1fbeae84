"""Persistence: the database engine, migrations, repositories that return domain objects, and
the content-addressed blob store (model files, uploaded files, datasets) under ``LLMOS_HOME``.

ORM rows (``rows.py``) never leave this package; callers get :mod:`llmos.domain` values from
the repositories. This package imports no service package above it.
"""

from __future__ import annotations

from llmos.storage.db import Database, make_engine, open_database
from llmos.storage.manifests import ManifestRepository

__all__ = ["Database", "ManifestRepository", "make_engine", "open_database"]
