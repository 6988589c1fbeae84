"""Building the kernel from the frozen Config, with every collaborator injectable."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

from llmos.config import Config
from llmos.data.service import DataService
from llmos.engine.base import Engine
from llmos.kernel.kernel import Kernel
from llmos.kernel.ports import EngineFactory, Registry, Scheduler, SchedulerFactory
from llmos.kernel.residency import LoadedModel, ModelLoader
from llmos.observability.metrics import Metrics, ObservedEventLog
from llmos.resources.inventory import Inventory, take_inventory
from llmos.resources.residency import ResidencyManager
from llmos.resources.wiring import residency_from_config
from llmos.security.service import Security
from llmos.storage.db import Database


def default_engine_factory(backend: str) -> Engine:
    """Each model in its own worker process, running ``backend`` (``llamacpp``, ``fake``)."""
    from llmos.engine.worker import WorkerEngine

    return WorkerEngine(backend)


def default_scheduler_factory(engine: Engine, config: Config, model: str) -> Scheduler:
    from llmos.scheduler import ModelScheduler

    return ModelScheduler(engine, model=model, config=config.scheduler)


def observed_scheduler_factory(metrics: Metrics) -> SchedulerFactory:
    """The default scheduler, reporting queue waits, preemptions and rejections to ``metrics``."""

    def factory(engine: Engine, config: Config, model: str) -> Scheduler:
        from llmos.scheduler import ModelScheduler

        return ModelScheduler(
            engine, model=model, config=config.scheduler, on_event=metrics.scheduler_listener(model)
        )

    return factory


def sharing_tenant_weights(factory: SchedulerFactory, weights: dict[str, float]) -> SchedulerFactory:
    """``factory``'s schedulers, their fair-share policy reading ``weights`` live: the security
    service keeps it current, so a tenant's stored weight (its plan) applies to its next request."""

    def make(engine: Engine, config: Config, model: str) -> Scheduler:
        from llmos.scheduler.policies import FairPolicy

        scheduler = factory(engine, config, model)
        policy = getattr(scheduler, "policy", None)
        if isinstance(policy, FairPolicy):
            policy.weights = weights
        return scheduler

    return make


def default_registry(config: Config) -> Registry:
    from llmos.registry import open_registry

    registry: Registry = open_registry(config)
    return registry


def build_kernel(
    config: Config,
    *,
    registry: Registry | None = None,
    engine_factory: EngineFactory | None = None,
    scheduler_factory: SchedulerFactory | None = None,
    inventory: Inventory | None = None,
    clock: Callable[[], float] = time.monotonic,
    wall_clock: Callable[[], float] = time.time,
    unload_drain_s: float = 0.0,
    load_extra: Mapping[str, Any] | None = None,
    database: Database | None = None,
    data: DataService | None = None,
    metrics: Metrics | None = None,
    security: Security | None = None,
) -> Kernel:
    """The kernel for ``config``; tests pass a fake engine factory (and may pass the rest)."""
    metrics = metrics or Metrics(clock)
    security = security or Security(config, lambda: kernel.database, clock=wall_clock)
    loader = ModelLoader(
        config,
        engine_factory or default_engine_factory,
        sharing_tenant_weights(scheduler_factory or observed_scheduler_factory(metrics), security.weights),
        unload_drain_s=unload_drain_s,
        load_extra=load_extra,
    )
    machine = inventory or take_inventory()
    residency: ResidencyManager[LoadedModel] = residency_from_config(
        config, machine, unload=loader.unload, measure=loader.measure
    )
    residency.events = ObservedEventLog(metrics)  # count loads, evictions and expirations
    kernel = Kernel(
        config,
        registry=registry if registry is not None else default_registry(config),
        loader=loader,
        residency=residency,
        inventory=machine,
        database=database,
        data=data,
        clock=clock,
        wall_clock=wall_clock,
        metrics=metrics,
        security=security,
    )
    return kernel
