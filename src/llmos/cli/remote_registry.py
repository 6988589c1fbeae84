"""The registry commands' view of a running server: the same methods as the local
:class:`~llmos.registry.registry.Registry`, answered through the SDK.

``llmos list/show/pull/rm/cp/import`` use it whenever a server answers at ``LLMOS_BASE_URL``,
so the CLI and the server never disagree about what is registered; without a server they work
on the local registry directly. ``import`` sends the file's absolute path, which the server
reads: it is meant for a server on this machine.
"""

from __future__ import annotations

import builtins
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

from llmos.domain.manifest import Manifest, Removal
from llmos.domain.progress import Progress as Report
from llmos.domain.progress import ProgressFn
from llmos.sdk import Client, Model, ModelDetail, Progress


def _manifest(m: Model) -> Manifest:
    created = None
    if m.created_at:
        try:
            created = datetime.fromisoformat(m.created_at)
        except ValueError:
            created = None
    return Manifest(
        name=m.name,
        digest=m.digest,
        size=m.size,
        format="gguf" if m.format == "gguf" else "sentence-transformers",
        files=(),
        architecture=m.architecture,
        parameter_count=m.parameter_count,
        quantization=m.quantization,
        context_length=m.context_length,
        chat_template=m.chat_template if isinstance(m, ModelDetail) else None,
        metadata=_template_facts(m) if isinstance(m, ModelDetail) else {},
        parameters=dict(m.parameters),
        license=m.license,
        source=m.source,
        parent=m.parent,
        created_at=created,
    )


def _template_facts(m: ModelDetail) -> dict[str, str]:
    facts = {"chat_template_source": m.chat_template_source, "chat_template_guess": m.chat_template_guess}
    return {k: v for k, v in facts.items() if v is not None}


def _relay(progress: ProgressFn | None) -> Callable[[Progress], None]:
    def relay(p: Progress) -> None:
        if progress is not None and not p.done:
            progress(Report(phase=p.status, completed=p.completed, total=p.total, digest=p.digest))

    return relay


class RemoteRegistry:
    """Registry operations on the server behind ``client``."""

    def __init__(self, client: Client) -> None:
        self.client = client

    def resolve(self, name: str) -> Manifest:
        return _manifest(self.client.models.show(name))

    def versions(self, name: str) -> builtins.list[Manifest]:
        return [_manifest(v) for v in self.client.models.show(name).versions]

    def list(self) -> builtins.list[Manifest]:
        return [_manifest(m) for m in self.client.models.list()]

    def pull(self, name: str, progress: ProgressFn | None = None) -> Manifest:
        self.client.models.pull(name, progress=_relay(progress))
        return self.resolve(name)

    def import_file(self, path: Path, name: str, progress: ProgressFn | None = None) -> Manifest:
        self.client.models.import_file(str(path.expanduser().absolute()), name, progress=_relay(progress))
        return self.resolve(name)

    def remove(self, name: str) -> Removal:
        self.client.models.delete(name)
        return Removal(name=name, manifests=(), freed_blobs=())

    def copy(self, src: str, dst: str) -> Manifest:
        return _manifest(self.client.models.copy(src, dst))
