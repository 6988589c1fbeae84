"""Making a registered model resident: a worker engine and its scheduler, per model.

The residency *decisions* (budget, eviction, keep-alive, one load at a time per model) belong
to :class:`llmos.resources.ResidencyManager`; this module supplies what it manages — a
:class:`LoadedModel` — and the two callables it is given: how to load one (an engine from the
engine factory, loaded off the event loop, then a started scheduler) and how to unload one
(stop its scheduler, aborting what runs, then unload the engine).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from llmos.config import Config
from llmos.engine.base import Engine, EngineInfo, LoadSpec
from llmos.kernel.locked_engine import LockedEngine
from llmos.kernel.ports import EngineFactory, Scheduler, SchedulerFactory
from llmos.registry.manifest import Manifest
from llmos.resources.residency import LoadGrant

log = logging.getLogger(__name__)

R = TypeVar("R")

FORMAT_BACKENDS: dict[str, str] = {"sentence-transformers": "sentence_transformers"}
"""Manifest format → the engine backend that loads it (GGUF: ``config.engine.backend``)."""


@dataclass
class LoadedModel:
    """One resident model: the engine holding it and the scheduler stepping that engine."""

    key: str
    manifest: Manifest
    engine: Engine
    info: EngineInfo
    scheduler: Scheduler
    thread: ThreadPoolExecutor = field(repr=False, default_factory=lambda: ThreadPoolExecutor(1))
    """One long-lived thread for the kernel's engine calls (a worker engine dies with the
    thread that started it, so it must not be a pool thread that may go away)."""

    async def call(self, fn: Callable[[], R]) -> R:
        """Run a blocking engine call on the model's own thread."""
        return await asyncio.get_running_loop().run_in_executor(self.thread, fn)


class ModelLoader:
    """Builds and tears down :class:`LoadedModel` values for the residency manager."""

    def __init__(
        self,
        config: Config,
        engine_factory: EngineFactory,
        scheduler_factory: SchedulerFactory,
        *,
        backend: str | None = None,
        unload_drain_s: float = 0.0,
        load_extra: Mapping[str, Any] | None = None,
    ) -> None:
        self._config = config
        self._engine_factory = engine_factory
        self._scheduler_factory = scheduler_factory
        self._backend = backend or config.engine.backend
        self._unload_drain_s = unload_drain_s
        self._load_extra = dict(load_extra or {})
        self.loaded: dict[str, LoadedModel] = {}
        """Every model this loader has loaded and not yet unloaded, by residency key."""

    def load_spec(self, manifest: Manifest, model_path: Path, n_threads: int) -> LoadSpec:
        cfg = self._config.engine
        n_ctx = cfg.n_ctx
        if manifest.context_length:
            # Every slot may use the model's whole trained context, but never more KV than asked.
            n_ctx = min(n_ctx, max(manifest.context_length, 256) * cfg.n_slots)
        return LoadSpec(
            model_path=model_path,
            format=manifest.format,
            n_ctx=n_ctx,
            n_slots=cfg.n_slots,
            n_threads=n_threads if cfg.n_threads == 0 else cfg.n_threads,
            n_batch=cfg.n_batch,
            embedding=manifest.format != "gguf",
            chat_template=manifest.chat_template,
            cpu_weights=cfg.cpu_weights,
            derived_dir=self._config.paths.derived,
            extra=self._load_extra,
        )

    def backend_for(self, manifest: Manifest) -> str:
        """The configured backend runs GGUF models; other formats have a backend of their own
        (the fake backend stands in for every one of them)."""
        if manifest.format == "gguf" or self._backend == "fake":
            return self._backend
        return FORMAT_BACKENDS.get(manifest.format, self._backend)

    async def load(self, key: str, manifest: Manifest, model_path: Path, grant: LoadGrant) -> LoadedModel:
        """Start an engine for ``manifest`` and a scheduler over it. Raises what the engine raises."""
        engine: Engine = LockedEngine(self._engine_factory(self.backend_for(manifest)))
        spec = self.load_spec(manifest, model_path, grant.n_threads)
        log.info("loading %s (%s) with %d threads", key, manifest.short_digest, spec.n_threads)
        thread = ThreadPoolExecutor(1, thread_name_prefix=f"llmos-model-{manifest.short_digest}")
        loop = asyncio.get_running_loop()
        try:
            info = await loop.run_in_executor(thread, engine.load, spec)
        except BaseException:
            with contextlib.suppress(Exception):
                await loop.run_in_executor(thread, engine.unload)
            thread.shutdown(wait=False)
            raise
        scheduler = self._scheduler_factory(engine, self._config, key)
        scheduler.start()
        model = LoadedModel(
            key=key, manifest=manifest, engine=engine, info=info, scheduler=scheduler, thread=thread
        )
        self.loaded[key] = model
        return model

    async def unload(self, key: str, model: LoadedModel) -> None:
        """Stop the model's scheduler (aborting what still runs) and unload its engine."""
        log.info("unloading %s", key)
        if self.loaded.get(key) is model:
            del self.loaded[key]
        try:
            await model.scheduler.stop(self._unload_drain_s)
        finally:
            try:
                await model.call(model.engine.unload)
            finally:
                model.thread.shutdown(wait=False)

    @staticmethod
    async def measure(model: LoadedModel) -> int | None:
        health = await model.call(model.engine.health)
        return health.rss_bytes or None
