"""Making a registered model resident: one engine core per model.

The residency *decisions* (budget, eviction, keep-alive, one load at a time per model) belong
to :class:`llmos.resources.ResidencyManager`; this module supplies what it manages — a
:class:`LoadedModel` — and the two callables it is given: how to load one (start an engine core
on a host, which loads the engine and runs its scheduler) and how to unload one (drain it,
aborting what still runs, then stop the core).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from llmos.config import Config
from llmos.core import CoreClient, CoreHost, CoreSpec
from llmos.domain.manifest import Manifest
from llmos.engine.base import EngineInfo, LoadSpec
from llmos.resources.residency import LoadGrant
from llmos.scheduler.request_events import SchedulerEvent

log = logging.getLogger(__name__)

FORMAT_BACKENDS: dict[str, str] = {"sentence-transformers": "sentence_transformers"}
"""Manifest format → the engine backend that loads it (GGUF: ``config.engine.backend``)."""

HostFactory = Callable[[str], CoreHost]
"""Backend name → where a new engine core running it will live (a process, a thread)."""


@dataclass
class LoadedModel:
    """One resident model: the client of the engine core that holds it."""

    key: str
    manifest: Manifest
    core: CoreClient
    info: EngineInfo


class ModelLoader:
    """Builds and tears down :class:`LoadedModel` values for the residency manager.

    ``on_event(model)`` gives each core's scheduler-event listener (metrics); ``on_dead`` hears
    of a core that died (the kernel unloads it so the next request starts a fresh one);
    ``tenant_weights`` gives the fair-share weights a new core starts with.
    """

    def __init__(
        self,
        config: Config,
        host_factory: HostFactory,
        *,
        backend: str | None = None,
        unload_drain_s: float = 0.0,
        load_extra: Mapping[str, Any] | None = None,
        clock: Callable[[], float] | None = None,
        on_event: Callable[[str], Callable[[SchedulerEvent], None] | None] | None = None,
        tenant_weights: Callable[[], Mapping[str, float]] | None = None,
    ) -> None:
        self._config = config
        self._host_factory = host_factory
        self._backend = backend or config.engine.backend
        self._unload_drain_s = unload_drain_s
        self._load_extra = dict(load_extra or {})
        self._clock = clock
        self._on_event = on_event
        self._tenant_weights = tenant_weights
        self.on_dead: Callable[[LoadedModel, str], None] | None = None
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

    def core_spec(self, key: str, manifest: Manifest, model_path: Path, n_threads: int) -> CoreSpec:
        return CoreSpec(
            backend=self.backend_for(manifest),
            load=self.load_spec(manifest, model_path, n_threads),
            model=key,
            scheduler=self._config.scheduler,
            tenant_weights=dict(self._tenant_weights()) if self._tenant_weights else {},
        )

    async def load(self, key: str, manifest: Manifest, model_path: Path, grant: LoadGrant) -> LoadedModel:
        """Start an engine core for ``manifest`` (it loads the model). Raises what loading raises."""
        spec = self.core_spec(key, manifest, model_path, grant.n_threads)
        log.info("loading %s (%s) with %d threads", key, manifest.short_digest, spec.load.n_threads)
        model: LoadedModel | None = None

        def died(why: str) -> None:
            if model is not None and self.on_dead is not None:
                self.on_dead(model, why)

        core = CoreClient(
            self._host_factory(spec.backend),
            spec,
            clock=self._clock or time.monotonic,
            on_event=self._on_event(key) if self._on_event else None,
            on_dead=died,
        )
        info = await core.start()
        model = LoadedModel(key=key, manifest=manifest, core=core, info=info)
        self.loaded[key] = model
        return model

    async def unload(self, key: str, model: LoadedModel) -> None:
        """Drain the model's core (aborting what still runs), unload its engine and stop it."""
        log.info("unloading %s", key)
        if self.loaded.get(key) is model:
            del self.loaded[key]
        await model.core.close(self._unload_drain_s)

    @staticmethod
    async def measure(model: LoadedModel) -> int | None:
        health = await model.core.health()
        return health.rss_bytes or None
