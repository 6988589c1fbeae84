"""``llmos scale MODEL --replicas N`` and ``llmos cluster status``: cluster mode, through the SDK."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.table import Table

from llmos.cli.runtime import out_console, require_server

cluster_app = typer.Typer(
    help="Cluster mode (llmos serve --cluster): nodes and replicas.", no_args_is_help=True
)


def scale(
    model: Annotated[str, typer.Argument(help="Model name, e.g. smollm2:135m")],
    replicas: Annotated[int, typer.Option("--replicas", "-n", min=1, max=1024, help="Replicas to run")],
) -> None:
    """Start or stop replicas of a model on the cluster (the server must run with --cluster)."""
    with require_server() as client:
        serving = client.scale(model, replicas)
    out_console.print(f"{model}: {serving} replica{'s' if serving != 1 else ''} serving")


def _resources(res: dict[str, Any]) -> str:
    cpu = res.get("CPU")
    gpu = res.get("GPU")
    mem = res.get("memory")
    parts = [] if cpu is None else [f"{cpu:g} CPU"]
    if gpu:
        parts.append(f"{gpu:g} GPU")
    if mem is not None:
        parts.append(f"{mem / 2**30:.1f} GiB")
    return ", ".join(parts) or "-"


def status() -> None:
    """Show the cluster's nodes (resources total and free), each model's replicas, queues and health."""
    with require_server() as client:
        info = client.cluster()
    if not info.get("enabled"):
        out_console.print("cluster mode is off: start the server with --cluster auto (or ray://HOST:PORT)")
        return
    out_console.print(f"Ray cluster: {info.get('address')}")
    nodes = Table(box=None)
    for col in ("NODE", "ADDRESS", "ROLE", "STATE", "TOTAL", "FREE"):
        nodes.add_column(col, no_wrap=col == "NODE")
    for n in info.get("nodes", []):
        nodes.add_row(
            n["node_id"][:12],
            n["address"],
            "head" if n["is_head"] else "worker",
            "alive" if n["alive"] else "dead",
            _resources(n["total"]),
            _resources(n["available"]),
        )
    out_console.print(nodes)
    table = Table(box=None)
    for col in ("REPLICA", "NODE", "PID", "STATE", "RUNNING", "QUEUED", "TOKENS OUT"):
        table.add_column(col, no_wrap=col == "REPLICA")
    for m in info.get("models", []):
        for r in m["replicas"]:
            table.add_row(
                r["name"],
                (r["node_id"] or "-")[:12],
                str(r["pid"] or "-"),
                r["state"],
                str(r["running"]),
                str(r["queued"]),
                str(r["outstanding_tokens"]),
            )
    out_console.print(table)
    for m in info.get("models", []):
        scaling = f"autoscaling {m['min_replicas']}..{m['max_replicas']}" if m["autoscaling"] else "fixed"
        routed = ", ".join(f"{k} {v}" for k, v in m["routed"].items())
        out_console.print(f"{m['model']}: {len(m['replicas'])} replicas ({scaling}); routed: {routed}")


def register(app: typer.Typer) -> None:
    app.command("scale")(scale)
    cluster_app.command("status")(status)
    app.add_typer(cluster_app, name="cluster")
