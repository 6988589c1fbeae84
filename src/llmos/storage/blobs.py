"""The content-addressed blob store: ``<home>/blobs/sha256-<digest>``.

A blob is written to a temporary file in ``<home>/tmp`` (the same filesystem), hashed while it
is written, verified, flushed to disk and only then renamed into place: a reader never sees a
half-written blob, and a crash leaves only a temp file, removed by :meth:`BlobStore.clean_tmp`.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import logging
import os
import re
import secrets
import shutil
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO, BinaryIO

from llmos.domain.progress import ProgressFn, report
from llmos.errors import IntegrityError, InvalidRequest, NotFound, StorageFull
from llmos.procs import pid_alive
from llmos.types import Digest

log = logging.getLogger(__name__)

CHUNK = 1 << 20
_DIGEST = re.compile(r"^[0-9a-f]{64}$")
_TEMP = re.compile(r"^(?:blob-(\d+)-[0-9a-f]+\.partial|[a-z]+-(\d+)-[A-Za-z0-9_]+)$")
_FULL = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG}

WriteFn = Callable[[BinaryIO, bytes], object]
"""How bytes reach the temp file; tests inject one that raises ENOSPC."""


def _default_write(f: BinaryIO, data: bytes) -> object:
    return f.write(data)


def check_digest(digest: str) -> Digest:
    """``digest`` lowercased; raises InvalidRequest unless it is 64 hex digits (``sha256:`` allowed)."""
    d = digest.strip().lower().removeprefix("sha256:")
    if not _DIGEST.match(d):
        raise InvalidRequest(f"invalid digest {digest!r}: a sha256 digest is 64 hex digits", param="digest")
    return d


def _storage_full(exc: OSError, where: Path) -> StorageFull:
    return StorageFull(
        f"no space left on the disk holding {where} ({exc.strerror}); free some space, or point "
        "LLMOS_HOME at a larger disk, and try again",
    )


@dataclass(frozen=True)
class Blob:
    digest: Digest
    size: int
    path: Path


class BlobWriter:
    """Streams bytes into a temp file; :meth:`finish` verifies, :meth:`commit` publishes.

    Use as a context manager: leaving it without ``commit`` (an error, a crash in the caller)
    deletes the temp file, so nothing half-written remains.
    """

    def __init__(
        self,
        store: BlobStore,
        expected: Digest | None,
        progress: ProgressFn | None,
        total: int | None,
        phase: str,
    ) -> None:
        self._store = store
        self._expected = check_digest(expected) if expected is not None else None
        self._progress = progress
        self._total = total
        self._phase = phase
        self._hash = hashlib.sha256()
        self.size = 0
        self.temp = store.tmp / f"blob-{os.getpid()}-{secrets.token_hex(8)}.partial"
        self._file: BinaryIO | None = None
        self._digest: Digest | None = None
        self._committed = False

    def __enter__(self) -> BlobWriter:
        try:
            self._store.tmp.mkdir(parents=True, exist_ok=True)
            self._file = self.temp.open("xb")
        except OSError as exc:
            if exc.errno in _FULL:
                raise _storage_full(exc, self._store.tmp) from exc
            raise
        return self

    def __exit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        if not self._committed:
            self.discard()

    def write(self, data: bytes) -> None:
        if self._file is None:
            raise RuntimeError("BlobWriter used outside its 'with' block")
        try:
            self._store.write_fn(self._file, data)
        except OSError as exc:
            if exc.errno in _FULL:
                self.discard()
                raise _storage_full(exc, self._store.tmp) from exc
            raise
        self._hash.update(data)
        self.size += len(data)
        report(self._progress, self._phase, self.size, self._total)

    def copy_from(self, src: IO[bytes]) -> None:
        while chunk := src.read(CHUNK):
            self.write(chunk)

    def finish(self) -> Digest:
        """Flush to disk and verify against the expected digest. Raises IntegrityError."""
        if self._file is None:
            raise RuntimeError("BlobWriter used outside its 'with' block")
        if self._digest is None:
            try:
                self._file.flush()
                os.fsync(self._file.fileno())
            except OSError as exc:
                if exc.errno in _FULL:
                    self.discard()
                    raise _storage_full(exc, self._store.tmp) from exc
                raise
            self._file.close()
            self._digest = self._hash.hexdigest()
        if self._expected is not None and self._digest != self._expected:
            raise IntegrityError(
                f"checksum mismatch: expected sha256:{self._expected}, got sha256:{self._digest}; "
                "the download was corrupted or the source changed — try again",
            )
        return self._digest

    def commit(self) -> Blob:
        """Verify (if not yet) and rename into the store. Idempotent when the blob exists."""
        digest = self.finish()
        target = self._store.path(digest)
        target.parent.mkdir(parents=True, exist_ok=True)
        if target.is_file() and target.stat().st_size == self.size:
            # Same content is already there (content addressing); keep the existing inode, which
            # a loaded model may have mapped.
            self.discard()
        else:
            os.replace(self.temp, target)
            _fsync_dir(target.parent)
        self._committed = True
        return Blob(digest=digest, size=self.size, path=target)

    def discard(self) -> None:
        if self._file is not None and not self._file.closed:
            self._file.close()
        with contextlib.suppress(FileNotFoundError):
            self.temp.unlink()


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


class BlobStore:
    """Blobs by sha256 under ``root``; temp files under ``tmp`` (same filesystem); files derived
    from a blob (``<derived>/sha256-<digest>.<variant>``, e.g. the engine's CPU re-encoding of
    weights) are deleted with it."""

    def __init__(
        self, root: Path, tmp: Path, *, write_fn: WriteFn = _default_write, derived: Path | None = None
    ) -> None:
        self.root = root
        self.tmp = tmp
        self.write_fn = write_fn
        self.derived = derived

    def path(self, digest: Digest) -> Path:
        return self.root / f"sha256-{check_digest(digest)}"

    def exists(self, digest: Digest) -> bool:
        return self.path(digest).is_file()

    def require(self, digest: Digest) -> Path:
        """The blob's path; raises NotFound when it is missing."""
        p = self.path(digest)
        if not p.is_file():
            raise NotFound(f"blob sha256:{digest} is missing from {self.root}; pull the model again")
        return p

    def digests(self) -> list[Digest]:
        if not self.root.is_dir():
            return []
        return sorted(
            p.name.removeprefix("sha256-") for p in self.root.iterdir() if p.name.startswith("sha256-")
        )

    def writer(
        self,
        expected: Digest | None = None,
        *,
        progress: ProgressFn | None = None,
        total: int | None = None,
        phase: str = "writing",
    ) -> BlobWriter:
        return BlobWriter(self, expected, progress, total, phase)

    def put_stream(
        self,
        src: BinaryIO,
        expected: Digest | None = None,
        *,
        progress: ProgressFn | None = None,
        total: int | None = None,
    ) -> Blob:
        with self.writer(expected, progress=progress, total=total) as w:
            w.copy_from(src)
            return w.commit()

    def delete_derived(self, digest: Digest) -> None:
        """Delete the files derived from ``digest`` (a blob's, or a multi-file model's folder's)."""
        if self.derived is not None and self.derived.is_dir():
            for p in self.derived.glob(f"sha256-{digest}.*"):
                with contextlib.suppress(FileNotFoundError):
                    p.unlink()

    def delete(self, digest: Digest) -> bool:
        """Delete a blob and whatever was derived from it. Returns whether the blob existed."""
        path = self.path(digest)
        self.delete_derived(digest)
        try:
            path.unlink()
        except FileNotFoundError:
            return False
        return True

    def clean_tmp(self) -> int:
        """Remove temp files left by processes that died mid-write. Returns how many."""
        if not self.tmp.is_dir():
            return 0
        removed = 0
        for p in self.tmp.iterdir():
            m = _TEMP.match(p.name)
            if m and not pid_alive(int(m.group(1) or m.group(2))):
                if p.is_dir():
                    shutil.rmtree(p, ignore_errors=True)
                else:
                    with contextlib.suppress(FileNotFoundError):
                        p.unlink()
                removed += 1
        if removed:
            log.info("removed %d stale temp file(s) from %s", removed, self.tmp)
        return removed

    @contextlib.contextmanager
    def scratch_dir(self, prefix: str) -> Iterator[Path]:
        """A temporary folder under ``tmp`` removed afterwards (downloads, extractions)."""
        self.tmp.mkdir(parents=True, exist_ok=True)
        path = Path(tempfile.mkdtemp(prefix=f"{prefix}-{os.getpid()}-", dir=self.tmp))
        try:
            yield path
        finally:
            shutil.rmtree(path, ignore_errors=True)
