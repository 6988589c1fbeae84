"""The shapes the kernel needs from its collaborators, stated structurally.

The real ones are :class:`llmos.scheduler.ModelScheduler` and the registry service; the
kernel depends on these protocols so that each side can be built and tested on its own.
"""

from __future__ import annotations

import builtins
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any, Protocol

from llmos.config import Config
from llmos.engine.base import Engine, SeqOutput
from llmos.registry.manifest import Manifest


class GenerationHandle(Protocol):
    """One submitted sequence: iterate its outputs until one carries a finish reason."""

    def __aiter__(self) -> AsyncIterator[SeqOutput]: ...

    async def cancel(self) -> None: ...

    @property
    def queue_position(self) -> int | None: ...

    @property
    def estimated_start(self) -> float | None:
        """Seconds from now until it is expected to hold a slot; 0 while running; None when done."""
        ...


class Scheduler(Protocol):
    def submit(self, request: Any) -> GenerationHandle: ...

    def start(self) -> None: ...

    async def stop(self, drain_timeout: float) -> None: ...

    def snapshot(self) -> Any: ...


class Registry(Protocol):
    def resolve(self, name: str) -> Manifest: ...

    def list(self) -> builtins.list[Manifest]: ...

    def pull(self, name: str, progress: Callable[..., Any] | None = None) -> Manifest: ...

    def import_file(self, path: Path, name: str, progress: Callable[..., Any] | None = None) -> Manifest: ...

    def remove(self, name: str) -> Any: ...

    def copy(self, src: str, dst: str) -> Manifest: ...

    def versions(self, name: str) -> builtins.list[Manifest]: ...

    def model_path(self, manifest: Manifest) -> Path:
        """What an engine loads: the GGUF blob, or the folder of a multi-file model."""
        ...


EngineFactory = Callable[[str], Engine]
"""Backend name (``llamacpp``, ``fake``) → an unloaded engine."""
SchedulerFactory = Callable[[Engine, Config, str], Scheduler]
"""(engine, config, model name) → a scheduler for that engine, not yet started."""
RegistryFactory = Callable[[Config], Registry]
