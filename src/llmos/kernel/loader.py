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
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from llmos.cluster.autoscaler import Autoscaler
from llmos.cluster.router import PrefixRouter
from llmos.config import Config
from llmos.core import CoreClient, CoreHost, CoreSpec
from llmos.domain.manifest import Manifest
from llmos.engine.base import EngineInfo, LoadSpec
from llmos.kernel.replicas import ReplicaSet
from llmos.resources.residency import LoadGrant
from llmos.resources.residency_events import EventLog
from llmos.scheduler.request_events import SchedulerEvent

log = logging.getLogger(__name__)

FORMAT_BACKENDS: dict[str, str] = {"sentence-transformers": "sentence_transformers"}
"""Manifest format → the engine backend that loads it (GGUF: ``config.engine.backend``)."""

HostFactory = Callable[[str], CoreHost]
"""Backend name → where a new engine core running it will live (a process, a thread)."""


@dataclass
class ClusterPlan:
    """Cluster mode: each model is a :class:`ReplicaSet` of cores on hosts from ``make_host``."""

    make_host: Callable[[CoreSpec, str, int], CoreHost]
    """(the core's spec, the replica's name, its memory estimate in bytes) → a host (a Ray actor)."""
    has_room: Callable[[], Awaitable[bool]]
    events: EventLog
    min_replicas: int = 1
    max_replicas: int = 1
    replica_threads: int = 1
    target_wait_s: float = 2.0
    quiet_period_s: float = 60.0
    interval_s: float = 2.0
    sets: dict[str, ReplicaSet] = field(default_factory=dict)


@dataclass
class LoadedModel:
    """One resident model: the client of the engine core that holds it."""

    key: str
    manifest: Manifest
    core: CoreClient | ReplicaSet
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
        cluster: ClusterPlan | None = None,
    ) -> None:
        self._config = config
        self.cluster = cluster
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
        cluster = self.cluster
        threads = grant.n_threads if cluster is None else cluster.replica_threads
        spec = self.core_spec(key, manifest, model_path, threads)
        if cluster is not None:
            return await self._load_replicas(cluster, key, manifest, spec, grant)
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

    async def _load_replicas(
        self, cluster: ClusterPlan, key: str, manifest: Manifest, spec: CoreSpec, grant: LoadGrant
    ) -> LoadedModel:
        log.info("loading %s (%s) as %d replicas", key, manifest.short_digest, cluster.min_replicas)
        model: LoadedModel | None = None
        extra: dict[str, Any] = {} if self._clock is None else {"clock": self._clock}

        def died(why: str) -> None:
            if model is not None and self.on_dead is not None:
                self.on_dead(model, why)

        def make_core(name: str) -> CoreClient:
            return CoreClient(
                cluster.make_host(spec, name, grant.estimate.total),
                spec,
                on_event=self._on_event(key) if self._on_event else None,
                on_dead=lambda why: replicas.replica_died(name, why),
                **extra,
            )

        autoscaler = None
        if cluster.max_replicas > cluster.min_replicas:
            autoscaler = Autoscaler(
                min_replicas=cluster.min_replicas,
                max_replicas=cluster.max_replicas,
                target_wait_s=cluster.target_wait_s,
                quiet_period_s=cluster.quiet_period_s,
                clock=self._clock or time.monotonic,
            )
        replicas = ReplicaSet(
            key,
            make_core,
            router=PrefixRouter(),
            autoscaler=autoscaler,
            min_replicas=cluster.min_replicas,
            has_room=cluster.has_room,
            events=cluster.events,
            interval_s=cluster.interval_s,
            on_dead=died,
            **extra,
        )
        info = await replicas.start()
        model = LoadedModel(key=key, manifest=manifest, core=replicas, info=info)
        self.loaded[key] = model
        cluster.sets[key] = replicas
        return model

    async def unload(self, key: str, model: LoadedModel) -> None:
        """Drain the model's core (aborting what still runs), unload its engine and stop it."""
        log.info("unloading %s", key)
        if self.loaded.get(key) is model:
            del self.loaded[key]
        if self.cluster is not None and self.cluster.sets.get(key) is model.core:
            del self.cluster.sets[key]
        await model.core.close(self._unload_drain_s)

    @staticmethod
    async def measure(model: LoadedModel) -> int | None:
        health = await model.core.health()
        return health.rss_bytes or None
