"""A node's blob cache: a file is used only with the right sha256; sent bytes are verified on
arrival and never left half-written."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from llmos.cluster.blobs import BlobCache, blob_digest
from llmos.errors import EngineError


def test_an_existing_file_is_used_only_with_the_right_digest(tmp_path: Path) -> None:
    f = tmp_path / "model.gguf"
    f.write_bytes(b"weights" * 1000)
    digest = hashlib.sha256(f.read_bytes()).hexdigest()
    cache = BlobCache(tmp_path / "cache")
    assert cache.find(str(f), digest) == f
    assert cache.find(str(f), "0" * 64) is None
    assert cache.find(str(tmp_path / "elsewhere.gguf"), digest) is None
    assert blob_digest(f) == digest
    named = tmp_path / f"sha256-{'a' * 64}"
    named.write_bytes(b"x")
    assert blob_digest(named) == "a" * 64  # content-addressed names are trusted for the digest only


def test_chunks_in_any_order_arrive_verified(tmp_path: Path) -> None:
    data = bytes(range(256)) * 100
    digest = hashlib.sha256(data).hexdigest()
    cache = BlobCache(tmp_path / "cache")
    cache.begin(digest, len(data))
    cache.write(digest, 10000, data[10000:])
    cache.write(digest, 0, data[:10000])
    path = cache.finish(digest)
    assert path.read_bytes() == data and path == cache.path_for(digest)
    assert cache.find("/nowhere", digest) == path
    assert [p.name for p in (tmp_path / "cache").iterdir()] == [path.name]


def test_altered_bytes_are_discarded(tmp_path: Path) -> None:
    data = b"abc" * 1000
    digest = hashlib.sha256(data).hexdigest()
    cache = BlobCache(tmp_path / "cache")
    cache.begin(digest, len(data))
    cache.write(digest, 0, b"x" + data[1:])
    with pytest.raises(EngineError, match="expected"):
        cache.finish(digest)
    assert list((tmp_path / "cache").iterdir()) == []
    with pytest.raises(EngineError):
        cache.write(digest, 0, b"late")


def test_a_chunk_outside_the_blob_is_refused(tmp_path: Path) -> None:
    cache = BlobCache(tmp_path / "cache")
    cache.begin("f" * 64, 10)
    with pytest.raises(EngineError, match="outside"):
        cache.write("f" * 64, 8, b"xyz")
    cache.abort("f" * 64)
    assert list((tmp_path / "cache").iterdir()) == []
