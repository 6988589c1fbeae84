"""Model management: names, manifests, the content-addressed blob store, sources, the catalog.

``open_registry(config)`` wires storage, blobs and sources into a :class:`Registry` in one call.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from llmos.config import Config

if TYPE_CHECKING:
    from llmos.registry.registry import Registry


def open_registry(config: Config) -> Registry:
    """The registry for ``config``: its database (migrated), blob store (stale temp files
    cleaned), the package index via pip and the Hugging Face hub."""
    from llmos.registry.registry import Registry
    from llmos.registry.sources.hf import HfSource
    from llmos.registry.sources.pypi import PipFetcher
    from llmos.storage.blobs import BlobStore
    from llmos.storage.db import open_database
    from llmos.storage.manifests import ManifestRepository

    paths = config.paths
    paths.home.mkdir(parents=True, exist_ok=True)
    blobs = BlobStore(paths.blobs, paths.tmp, derived=paths.derived)
    blobs.clean_tmp()
    db = open_database(config)
    return Registry(
        ManifestRepository(db),
        blobs,
        pip=PipFetcher(config.pip_command),
        hub=HfSource(config.hf_endpoint),
        models_dir=paths.models,
    )


__all__ = ["open_registry"]
