"""Bringing a model file to the node a replica's actor runs on, verified by digest on arrival.

The actor first looks for the file at the path the front-end has it (a shared filesystem, or a
node on the same machine) and in its node's blob cache, and uses it only if its sha256 is the
expected one. Otherwise the front-end sends the bytes through Ray's object store in chunks
(:data:`CHUNK_BYTES` each, a few in flight); the actor writes them to a temporary file, checks the
digest when the last has arrived, and only then renames it into its cache: never a half-written
or altered blob. No Ray import here: this is the actor's file side, testable on its own.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import threading
from pathlib import Path

from llmos.errors import EngineError

CHUNK_BYTES = 8 * 1024 * 1024
_DIGEST_IN_NAME = re.compile(r"sha256[-:]([0-9a-f]{64})")
_known: dict[tuple[str, int, int], str] = {}
_known_lock = threading.Lock()


def file_sha256(path: Path) -> str:
    """The hex sha256 of ``path`` (remembered by path, size and mtime: a blob is hashed once)."""
    st = path.stat()
    key = (str(path), st.st_size, st.st_mtime_ns)
    with _known_lock:
        known = _known.get(key)
    if known is not None:
        return known
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    digest = h.hexdigest()
    with _known_lock:
        _known[key] = digest
    return digest


def blob_digest(path: Path) -> str:
    """The sha256 of a model file: from a content-addressed name (``sha256-<hex>``), else hashed."""
    match = _DIGEST_IN_NAME.search(path.name)
    return match.group(1) if match else file_sha256(path)


class BlobCache:
    """One node's side: where its verified blobs are, and the transfers under way."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._partial: dict[str, tuple[Path, int]] = {}
        self._lock = threading.Lock()

    def path_for(self, sha256: str) -> Path:
        return self.root / f"sha256-{sha256}"

    def find(self, remote_path: str, sha256: str) -> Path | None:
        """A local file with this content: the front-end's path if this node sees it, or the cache."""
        for candidate in (Path(remote_path), self.path_for(sha256)):
            with contextlib.suppress(OSError):
                if candidate.is_file() and file_sha256(candidate) == sha256:
                    return candidate
        return None

    def begin(self, sha256: str, size: int) -> None:
        """Start receiving ``size`` bytes that must hash to ``sha256``."""
        self.root.mkdir(parents=True, exist_ok=True)
        tmp = self.root / f".partial-{sha256}-{os.getpid()}-{threading.get_ident()}"
        with tmp.open("wb") as f:
            f.truncate(size)
        with self._lock:
            self._partial[sha256] = (tmp, size)

    def write(self, sha256: str, offset: int, data: bytes) -> None:
        with self._lock:
            entry = self._partial.get(sha256)
        if entry is None:
            raise EngineError(f"no transfer of blob {sha256[:12]} is under way")
        tmp, size = entry
        if offset < 0 or offset + len(data) > size:
            raise EngineError(
                f"chunk at {offset} (+{len(data)}) is outside blob {sha256[:12]} of {size} bytes"
            )
        fd = os.open(tmp, os.O_WRONLY)
        try:
            os.pwrite(fd, data, offset)
        finally:
            os.close(fd)

    def finish(self, sha256: str) -> Path:
        """Verify the received bytes and move them into the cache; raises EngineError (and drops
        them) when the digest differs."""
        with self._lock:
            entry = self._partial.pop(sha256, None)
        if entry is None:
            raise EngineError(f"no transfer of blob {sha256[:12]} is under way")
        tmp, _ = entry
        got = file_sha256(tmp)
        if got != sha256:
            tmp.unlink(missing_ok=True)
            raise EngineError(f"blob arrived with sha256 {got[:12]}, expected {sha256[:12]}: discarded")
        final = self.path_for(sha256)
        os.replace(tmp, final)
        return final

    def abort(self, sha256: str) -> None:
        with self._lock:
            entry = self._partial.pop(sha256, None)
        if entry is not None:
            entry[0].unlink(missing_ok=True)
