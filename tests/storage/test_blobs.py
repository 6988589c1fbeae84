from __future__ import annotations

import errno
import hashlib
import io
import os
from pathlib import Path
from typing import BinaryIO

import pytest

from llmos.domain.progress import Progress
from llmos.errors import IntegrityError, InvalidRequest, StorageFull
from llmos.storage.blobs import BlobStore, check_digest


def store(tmp_path: Path, **kw: object) -> BlobStore:
    return BlobStore(tmp_path / "blobs", tmp_path / "tmp", **kw)  # type: ignore[arg-type]


def listing(tmp_path: Path) -> list[str]:
    return sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*") if p.is_file())


def test_put_stream_is_content_addressed_and_reports_progress(tmp_path: Path) -> None:
    s = store(tmp_path)
    data = os.urandom(3 * (1 << 20) + 17)
    reports: list[Progress] = []
    blob = s.put_stream(
        io.BytesIO(data), hashlib.sha256(data).hexdigest(), progress=reports.append, total=len(data)
    )
    assert blob.digest == hashlib.sha256(data).hexdigest()
    assert blob.path == tmp_path / "blobs" / f"sha256-{blob.digest}"
    assert blob.path.read_bytes() == data
    assert reports[-1].completed == len(data) and reports[-1].total == len(data)
    assert [r.completed for r in reports] == sorted(r.completed or 0 for r in reports)
    assert s.digests() == [blob.digest]
    assert listing(tmp_path) == [f"blobs/sha256-{blob.digest}"]  # no temp file left


def test_checksum_mismatch_leaves_nothing(tmp_path: Path) -> None:
    s = store(tmp_path)
    with pytest.raises(IntegrityError, match="checksum mismatch"):
        s.put_stream(io.BytesIO(b"hello"), "0" * 64)
    assert listing(tmp_path) == []


def test_full_disk_raises_storage_full_and_cleans_up(tmp_path: Path) -> None:
    written = 0

    def write(f: BinaryIO, data: bytes) -> object:
        nonlocal written
        if written > 1 << 20:
            raise OSError(errno.ENOSPC, "No space left on device")
        written += len(data)
        return f.write(data)

    s = store(tmp_path, write_fn=write)
    with pytest.raises(StorageFull, match="no space left"):
        s.put_stream(io.BytesIO(os.urandom(4 << 20)))
    assert listing(tmp_path) == []


def test_abandoned_writer_leaves_nothing(tmp_path: Path) -> None:
    s = store(tmp_path)
    with pytest.raises(RuntimeError), s.writer() as w:
        w.write(b"partial")
        assert w.temp.exists()
        raise RuntimeError("killed half-way")
    assert listing(tmp_path) == []


def test_clean_tmp_removes_only_dead_writers(tmp_path: Path) -> None:
    s = store(tmp_path)
    s.tmp.mkdir(parents=True)
    dead = s.tmp / "blob-999999999-abcd.partial"  # no such pid
    dead.write_bytes(b"x")
    dead_dir = s.tmp / "pull-999999999-xyz"
    dead_dir.mkdir()
    (dead_dir / "w.whl").write_bytes(b"x")
    mine = s.tmp / f"blob-{os.getpid()}-beef.partial"
    mine.write_bytes(b"y")
    assert s.clean_tmp() == 2
    assert not dead.exists() and not dead_dir.exists() and mine.exists()


def test_same_content_twice_is_one_blob(tmp_path: Path) -> None:
    s = store(tmp_path)
    a = s.put_stream(io.BytesIO(b"same"))
    inode = a.path.stat().st_ino
    b = s.put_stream(io.BytesIO(b"same"))
    assert a.digest == b.digest and s.digests() == [a.digest]
    assert b.path.stat().st_ino == inode  # the existing file (maybe mapped by a model) is kept
    assert listing(tmp_path) == [f"blobs/sha256-{a.digest}"]
    assert s.delete(a.digest) and not s.delete(a.digest)


@pytest.mark.parametrize("bad", ["", "abc", "z" * 64, "a" * 65, "../" + "a" * 61])
def test_bad_digests_rejected(bad: str) -> None:
    with pytest.raises(InvalidRequest, match="64 hex digits"):
        check_digest(bad)


def test_digest_accepts_prefix_and_case() -> None:
    assert check_digest("sha256:" + "AB" * 32) == "ab" * 32


def test_delete_removes_what_was_derived_from_the_blob(tmp_path: Path) -> None:
    derived = tmp_path / "derived"
    s = store(tmp_path, derived=derived)
    a = s.put_stream(io.BytesIO(b"alpha"))
    b = s.put_stream(io.BytesIO(b"beta"))
    derived.mkdir()
    mine = derived / f"sha256-{a.digest}.q8_0.gguf"
    theirs = derived / f"sha256-{b.digest}.q8_0.gguf"
    mine.write_bytes(b"x")
    theirs.write_bytes(b"y")
    assert s.delete(a.digest)
    assert not mine.exists() and theirs.exists() and s.exists(b.digest)
