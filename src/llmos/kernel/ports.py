"""The shapes the kernel needs from its collaborators, stated structurally.

The real ones are :class:`llmos.core.RequestStream` (one submitted sequence of an engine core)
and the registry service; the kernel depends on these protocols so that each side can be built
and tested on its own.
"""

from __future__ import annotations

import builtins
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from llmos.core.stream import Item, Signal
from llmos.domain.manifest import Manifest, Removal
from llmos.domain.progress import ProgressFn
from llmos.engine.base import Engine


class GenerationHandle(Protocol):
    """One submitted sequence: its outputs as they arrive (the last one carries a finish reason,
    or is the error that ended it), read without waiting; a signal to wait on between reads."""

    def attach(self, signal: Signal) -> None:
        """Notify ``signal`` whenever new output arrives."""
        ...

    def take(self) -> list[Item]:
        """The outputs that arrived since the last call (never waits)."""
        ...

    def cancel_now(self) -> None:
        """Abort the sequence unless it has ended (non-blocking)."""
        ...

    @property
    def queue_position(self) -> int | None: ...

    @property
    def estimated_start(self) -> float | None:
        """Seconds from now until it is expected to hold a slot; 0 while running; None when done."""
        ...


class Registry(Protocol):
    """Model names to manifests and files (:class:`llmos.registry.registry.Registry`). Blocking:
    the kernel calls it on a worker thread. Unknown names raise ModelNotFound."""

    def resolve(self, name: str) -> Manifest: ...

    def list(self) -> builtins.list[Manifest]: ...

    def pull(self, name: str, progress: ProgressFn | None = None) -> Manifest: ...

    def in_catalog(self, name: str) -> bool:
        """Whether ``pull(name)`` would find ``name`` in the catalog (registered or not)."""
        ...

    def import_file(self, path: Path, name: str, progress: ProgressFn | None = None) -> Manifest: ...

    def remove(self, name: str) -> Removal: ...

    def copy(self, src: str, dst: str) -> Manifest: ...

    def versions(self, name: str) -> builtins.list[Manifest]: ...

    def model_path(self, manifest: Manifest) -> Path:
        """What an engine loads: the GGUF blob, or the folder of a multi-file model."""
        ...

    def register_derived(
        self, path: Path, name: str, *, base: Manifest, adapter: bool, lineage: dict[str, object]
    ) -> Manifest:
        """Register a fine-tune's result (adapter or merged GGUF) made from ``base``."""
        ...


EngineFactory = Callable[[str], Engine]
"""Backend name (``llamacpp``, ``fake``) → an unloaded engine (run by an in-process core)."""
