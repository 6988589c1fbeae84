"""Cluster mode: model replicas as Ray actors, routed between and scaled by the kernel.

Nothing here imports Ray at import time; only :mod:`llmos.cluster.ray_host` and
:mod:`llmos.cluster.runtime` do, and the kernel imports them only when ``--cluster`` is set.

* :mod:`llmos.cluster.router`: :class:`PrefixRouter`, prefix-cache affinity balanced against
  outstanding tokens (pure; a fake clock drives it in tests and benchmarks).
* :mod:`llmos.cluster.autoscaler`: :class:`Autoscaler`, replicas from the load-aware queueing
  model (pure).
* :mod:`llmos.cluster.runtime`: connecting to Ray (a local head on loopback, or an existing
  cluster) and what the cluster has (nodes, resources).
* :mod:`llmos.cluster.ray_host`: :class:`RayHost`, a :class:`~llmos.core.CoreHost` whose core runs
  in a Ray actor, and the blob transfer that brings the model file to the actor's node.
"""

from __future__ import annotations

from llmos.cluster.autoscaler import Autoscaler, ModelLoad, ScaleDecision
from llmos.cluster.router import PrefixRouter, RouteDecision, prefix_hashes

__all__ = ["Autoscaler", "ModelLoad", "PrefixRouter", "RouteDecision", "ScaleDecision", "prefix_hashes"]
