"""The kernel's view of cluster mode: the nodes, each model's replicas, and scaling them.

Built by :func:`llmos.kernel.build_kernel` only when ``--cluster`` is set (it is the one place
that imports :mod:`llmos.cluster.runtime`, and so Ray); without it :attr:`Kernel.cluster` is None.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass

from llmos.cluster.nodes import NodeInfo
from llmos.errors import InvalidRequest, ModelNotFound
from llmos.kernel.loader import ClusterPlan
from llmos.kernel.replicas import ReplicaView


@dataclass(frozen=True)
class ModelReplicas:
    model: str
    min_replicas: int
    max_replicas: int
    autoscaling: bool
    running: int
    queued: int
    replicas: tuple[ReplicaView, ...]
    router_entries: int
    """Prompt prefixes the model's router remembers (its state's size)."""
    routed: dict[str, int]
    """Routing decisions so far by kind: affinity, spill, load."""


@dataclass(frozen=True)
class ClusterStatus:
    address: str
    nodes: tuple[NodeInfo, ...]
    models: tuple[ModelReplicas, ...]


class ClusterControl:
    """See the module docstring. ``nodes()`` lists the cluster's nodes (blocking: run off the loop);
    ``disconnect()`` leaves the cluster at shutdown."""

    def __init__(
        self,
        plan: ClusterPlan,
        *,
        address: str,
        nodes: Callable[[], list[NodeInfo]],
        disconnect: Callable[[], None],
    ) -> None:
        self.plan = plan
        self.address = address
        self._nodes = nodes
        self._disconnect = disconnect

    async def status(self) -> ClusterStatus:
        nodes = tuple(await asyncio.to_thread(self._nodes))
        models = []
        for key, rs in sorted(self.plan.sets.items()):
            scaler = rs.autoscaler
            models.append(
                ModelReplicas(
                    model=key,
                    min_replicas=rs.min_replicas,
                    max_replicas=scaler.max_replicas if scaler is not None else rs.min_replicas,
                    autoscaling=scaler is not None and scaler.enabled,
                    running=rs.running,
                    queued=rs.queued,
                    replicas=tuple(rs.views()),
                    router_entries=rs.router.entries,
                    routed=dict(rs.router.decisions),
                )
            )
        return ClusterStatus(self.address, nodes, tuple(models))

    async def scale(self, key: str, replicas: int) -> int:
        """Set the replicas of the resident model ``key``; returns how many serve now."""
        rs = self.plan.sets.get(key)
        if rs is None:
            raise ModelNotFound(f"model {key!r} is not loaded", param="model")
        if (
            rs.autoscaler is not None
            and not rs.autoscaler.min_replicas <= replicas <= rs.autoscaler.max_replicas
        ):
            raise InvalidRequest(
                f"{key} autoscales between {rs.autoscaler.min_replicas} and {rs.autoscaler.max_replicas} "
                "replicas (--replicas MIN..MAX); ask for a count in that range",
                param="replicas",
            )
        return await rs.scale(replicas)

    def close(self) -> None:
        self._disconnect()
