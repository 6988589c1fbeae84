"""Building the kernel from the frozen Config, with every collaborator injectable."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from llmos.config import Config
from llmos.core import CoreHost, CoreSpec, ProcessHost, ThreadHost
from llmos.data.service import DataService
from llmos.kernel.cluster import ClusterControl
from llmos.kernel.kernel import Kernel
from llmos.kernel.loader import ClusterPlan, HostFactory, LoadedModel, ModelLoader
from llmos.kernel.ports import EngineFactory, Registry
from llmos.observability.metrics import Metrics, ObservedEventLog
from llmos.resources.inventory import Inventory, take_inventory
from llmos.resources.residency import ResidencyManager
from llmos.resources.wiring import residency_from_config
from llmos.security.service import Security
from llmos.storage.db import Database


def process_hosts(backend: str) -> CoreHost:
    """Each model's engine core in a process of its own (the server's default)."""
    return ProcessHost()


def thread_hosts(engine_factory: EngineFactory, clock: Callable[[], float] = time.monotonic) -> HostFactory:
    """Each model's engine core on a thread of this process, over engines from ``engine_factory``
    (tests: the fake engine, which they can reach and kill)."""
    return lambda backend: ThreadHost(engine_factory, clock=clock)


def default_registry(config: Config) -> Registry:
    from llmos.registry import open_registry

    registry: Registry = open_registry(config)
    return registry


def build_kernel(
    config: Config,
    *,
    registry: Registry | None = None,
    engine_factory: EngineFactory | None = None,
    host_factory: HostFactory | None = None,
    inventory: Inventory | None = None,
    clock: Callable[[], float] = time.monotonic,
    wall_clock: Callable[[], float] = time.time,
    unload_drain_s: float = 0.0,
    load_extra: Mapping[str, Any] | None = None,
    database: Database | None = None,
    data: DataService | None = None,
    metrics: Metrics | None = None,
    security: Security | None = None,
    replica_hosts: ReplicaHosts | None = None,
) -> Kernel:
    """The kernel for ``config``. Engine cores run in processes of their own, unless
    ``engine_factory`` is given (cores on threads over its engines: tests) or ``host_factory``.
    In cluster mode (``config.cluster``) each model is a set of replicas in Ray actors, or on the
    hosts ``replica_hosts`` makes (tests: replicas without Ray)."""
    metrics = metrics or Metrics(clock)
    security = security or Security(config, lambda: kernel.database, clock=wall_clock)
    if host_factory is None:
        host_factory = process_hosts if engine_factory is None else thread_hosts(engine_factory)
    events = ObservedEventLog(metrics)  # count loads, evictions, expirations and replica changes
    cluster = None
    if replica_hosts is not None:
        cluster = local_cluster(config, events, replica_hosts)
    elif config.cluster.enabled:
        cluster = cluster_control(config, events)
    loader = ModelLoader(
        config,
        host_factory,
        unload_drain_s=unload_drain_s,
        load_extra=load_extra,
        clock=clock,
        on_event=metrics.scheduler_listener,
        tenant_weights=lambda: security.weights,
        cluster=cluster.plan if cluster is not None else None,
    )
    machine = inventory or take_inventory()
    residency: ResidencyManager[LoadedModel] = residency_from_config(
        config, machine, unload=loader.unload, measure=loader.measure
    )
    residency.events = events
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
        cluster=cluster,
    )
    return kernel


ReplicaHosts = Callable[[CoreSpec, str, int], CoreHost]
"""(a core's spec, the replica's name, its memory estimate in bytes) → where that replica runs."""


def _plan(
    config: Config, events: ObservedEventLog, make_host: ReplicaHosts, has_room: Callable[[], Awaitable[bool]]
) -> ClusterPlan:
    cfg = config.cluster
    return ClusterPlan(
        make_host=make_host,
        has_room=has_room,
        events=events,
        min_replicas=cfg.min_replicas,
        max_replicas=cfg.max_replicas,
        replica_threads=max(1, int(cfg.replica_cpus)),
        target_wait_s=cfg.target_wait_s,
        quiet_period_s=cfg.quiet_period_s,
    )


def local_cluster(config: Config, events: ObservedEventLog, make_host: ReplicaHosts) -> ClusterControl:
    """Cluster mode's replica sets on hosts of this process (no Ray): tests and benchmarks."""

    async def room() -> bool:
        return True

    return ClusterControl(
        _plan(config, events, make_host, room), address="local", nodes=list, disconnect=lambda: None
    )


def cluster_control(config: Config, events: ObservedEventLog) -> ClusterControl:
    """Join (or start) the Ray cluster ``config.cluster`` names; each model's cores become Ray
    actors. The only door to Ray: nothing imports it without ``--cluster``."""
    import asyncio

    from llmos.cluster import runtime
    from llmos.cluster.ray_host import RayHost, ReplicaResources

    cfg = config.cluster
    runtime.connect(cfg)
    blob_root = config.paths.home / "cluster-blobs"

    def make_host(spec: CoreSpec, name: str, memory_bytes: int) -> CoreHost:
        resources = ReplicaResources(cfg.replica_cpus, cfg.replica_gpus, memory_bytes)
        return RayHost(spec.load.model_path, resources=resources, blob_root=blob_root, name=name)

    async def has_room() -> bool:
        return await asyncio.to_thread(runtime.has_room, cfg.replica_cpus, cfg.replica_gpus)

    plan = _plan(config, events, make_host, has_room)
    return ClusterControl(plan, address=cfg.address or "", nodes=runtime.nodes, disconnect=runtime.disconnect)
