"""Connecting the front-end to Ray, and what the cluster has.

``auto`` starts a local Ray head for this process: dashboard off, Ray's token authentication on
(Ray on Linux always advertises the machine's routable address, never 127.0.0.1, so the token is
what keeps its ports closed to others; ``docs/cluster.md``). An address joins an existing cluster: a
``ray://HOST:PORT`` Ray Client address or a ``HOST:PORT`` GCS address. Beyond loopback, Ray's own
token authentication must be on (``RAY_AUTH_MODE=token``; the token given as
``LLMOS_CLUSTER_TOKEN``): without a token :func:`connect` refuses, naming the fix.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import socket
from typing import Any

import ray

from llmos.cluster.nodes import NodeInfo
from llmos.config import ClusterConfig
from llmos.errors import ConfigError

logger = logging.getLogger(__name__)


def is_loopback(address: str) -> bool:
    """Whether ``address`` (``auto``, ``ray://HOST:PORT`` or ``HOST:PORT``) stays on this machine."""
    if address == "auto":
        return True
    host = address.removeprefix("ray://").rsplit(":", 1)[0].strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        try:
            return ipaddress.ip_address(socket.gethostbyname(host)).is_loopback
        except OSError:
            return False


def connect(cluster: ClusterConfig) -> str:
    """Join (or, for ``auto``, start) the Ray cluster; returns a line saying which. Idempotent.
    Raises ConfigError for an address beyond loopback without a token, or one Ray cannot reach."""
    address = cluster.address
    if address is None:
        raise ConfigError("cluster mode is off (set --cluster or LLMOS_CLUSTER)")
    if ray.is_initialized():
        return "already connected"
    if address == "auto":
        # A new local head turns Ray's token authentication on by itself in 2.60; say so, so a
        # changed default cannot open it.
        os.environ.setdefault("RAY_AUTH_MODE", "token")
    elif not is_loopback(address):
        if not cluster.auth_token:
            raise ConfigError(
                f"the Ray cluster at {address} is beyond loopback: start it with RAY_AUTH_MODE=token "
                "and give llmos its token as LLMOS_CLUSTER_TOKEN (see docs/cluster.md)"
            )
        os.environ["RAY_AUTH_MODE"] = "token"  # read by Ray itself, which has no other door for it
        os.environ["RAY_AUTH_TOKEN"] = cluster.auth_token
    _reload_auth_settings()
    common: dict[str, Any] = {
        "include_dashboard": False,
        "logging_level": logging.WARNING,
        "log_to_driver": False,
    }
    try:
        if address == "auto":
            ray.init(
                address="local",
                num_cpus=cluster.head_cpus,
                configure_logging=False,
                **common,
            )
            what = "started a local Ray head (dashboard off, token authentication on)"
        else:
            if address.startswith("ray://"):
                ray.init(address=address, logging_level=logging.WARNING)
            else:
                ray.init(address=address, configure_logging=False, **common)
            what = f"joined the Ray cluster at {address}"
    except (ConnectionError, RuntimeError, ValueError) as exc:
        raise ConfigError(f"cannot reach the Ray cluster at {address}: {exc}") from exc
    logger.info("%s", what)
    return what


def _reload_auth_settings() -> None:
    """Ray reads ``RAY_AUTH_MODE`` and its token when it is imported; make it read them again."""
    from ray._raylet import AuthenticationTokenLoader, Config  # type: ignore[attr-defined]

    Config.initialize("")
    AuthenticationTokenLoader.instance().reset_cache()


def disconnect() -> None:
    """Leave the cluster (stopping the local head when ``auto`` started it)."""
    if ray.is_initialized():
        ray.shutdown()


def nodes() -> list[NodeInfo]:
    """Every node Ray knows, with its resources (total and available now)."""
    available: dict[str, dict[str, float]] = ray._private.state.available_resources_per_node()  # type: ignore[no-untyped-call]
    head = ray.get_runtime_context().get_node_id() if ray.is_initialized() else ""
    out = []
    listed: list[dict[str, Any]] = ray.nodes()  # type: ignore[no-untyped-call]
    for n in listed:
        node_id = n["NodeID"]
        total = {k: float(v) for k, v in n.get("Resources", {}).items() if not k.startswith("node:")}
        free = {k: float(v) for k, v in available.get(node_id, {}).items() if not k.startswith("node:")}
        out.append(
            NodeInfo(
                node_id=node_id,
                address=str(n.get("NodeManagerAddress", "")),
                alive=bool(n.get("Alive")),
                is_head=bool(n.get("Resources", {}).get("node:__internal_head__")) or node_id == head,
                total=total,
                available=free if n.get("Alive") else {},
            )
        )
    return out


def has_room(num_cpus: float, num_gpus: float = 0.0, memory_bytes: int = 0) -> bool:
    """Whether some live node could place one more replica asking for these resources now."""
    for node in nodes():
        if not node.alive:
            continue
        a = node.available
        if (
            a.get("CPU", 0.0) >= num_cpus
            and a.get("GPU", 0.0) >= num_gpus
            and a.get("memory", float("inf")) >= memory_bytes
        ):
            return True
    return False
