"""Building the data service from the frozen Config, a database and an embedder."""

from __future__ import annotations

from llmos.config import Config
from llmos.data.datasets import DatasetService
from llmos.data.service import DataService
from llmos.data.tokens import Tokenizer, default_tokenizer
from llmos.domain.data import Embedder
from llmos.storage.blobs import BlobStore
from llmos.storage.data_datasets import DatasetStore
from llmos.storage.db import Database
from llmos.storage.documents import DocumentStore


def data_blobs(config: Config) -> BlobStore:
    """Datasets' bytes: ``<home>/data/blobs``, temp files in ``<home>/tmp`` (one filesystem)."""
    return BlobStore(config.paths.home / "data" / "blobs", config.paths.tmp)


def build_data_service(
    config: Config, database: Database, embedder: Embedder, *, tokenizer: Tokenizer | None = None
) -> DataService:
    tok = tokenizer or default_tokenizer()
    return DataService(
        DocumentStore(database),
        DatasetService(DatasetStore(database), data_blobs(config), tok),
        embedder,
        tok,
    )
