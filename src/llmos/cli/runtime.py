"""``llmos ps``, ``llmos load``, ``llmos unload`` (through the SDK), and what the CLI's
server-facing commands share: finding the server and drawing pull progress."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from types import TracebackType
from typing import TYPE_CHECKING, Annotated, Any
from urllib.parse import urlsplit

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TaskID, TextColumn
from rich.table import Table

from llmos.cli.format import human_size
from llmos.cli.progress_bar import transfer_columns
from llmos.errors import SourceUnavailable

if TYPE_CHECKING:
    from llmos.config import Config
    from llmos.sdk import Client

err_console = Console(stderr=True)
out_console = Console()


def make_client(config: Config | None = None, *, timeout: float = 600.0) -> Client:
    # The config and the SDK are imported here, not at the top: ``llmos --help`` needs neither.
    from llmos.config import load_config
    from llmos.sdk import Client

    cfg = config or load_config()
    return Client(base_url=cfg.base_url, api_key=cfg.api_key, timeout=timeout)


def _nothing_listens(base_url: str) -> bool:
    """True when no process accepts connections at ``base_url``'s host and port: then no server
    runs there, and the SDK (httpx) need not even be imported to find that out."""
    url = urlsplit(base_url)
    try:
        port = url.port or (443 if url.scheme == "https" else 80)
        with socket.create_connection((url.hostname or "127.0.0.1", port), timeout=1.0):
            return False
    except ConnectionRefusedError:
        return True
    except (OSError, ValueError):
        return False  # unknown: let the SDK's own check decide


def reachable_client(config: Config | None = None) -> Client | None:
    """A client for the configured server if one answers, else None."""
    from llmos.config import load_config

    cfg = config or load_config()
    if _nothing_listens(configured_base_url(cfg)):
        return None
    client = make_client(cfg)
    if client.is_reachable():
        return client
    client.close()
    return None


def no_server(base_url: str) -> SourceUnavailable:
    """The one-line answer of a command that needs a server when none answers (exit code 6)."""
    return SourceUnavailable(
        f"no llmos server is running at {base_url}; start one with 'llmos serve' (or set LLMOS_BASE_URL)"
    )


def configured_base_url(config: Config | None = None) -> str:
    """Where the CLI looks for the server: ``LLMOS_BASE_URL`` (or the config), else the default."""
    from llmos.config import DEFAULT_PORT, load_config

    cfg = config or load_config()
    return (cfg.base_url or f"http://127.0.0.1:{DEFAULT_PORT}").rstrip("/").removesuffix("/v1")


def require_server(config: Config | None = None) -> Client:
    """A client for the running server; raises :func:`no_server`'s error when none answers
    (without importing the SDK when nothing even listens there: that answer is instant)."""
    from llmos.config import load_config

    cfg = config or load_config()
    base_url = configured_base_url(cfg)
    if _nothing_listens(base_url):
        raise no_server(base_url)
    client = make_client(cfg)
    if not client.is_reachable():
        client.close()
        raise no_server(client.base_url)
    return client


class PullProgress:
    """A progress bar on stderr fed with pull events (SDK ``Progress`` or kernel ``PullEvent``)."""

    def __init__(self, label: str) -> None:
        self.label = label
        self._progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            *transfer_columns(),
            console=err_console,
            transient=False,
        )
        self._task: TaskID | None = None
        self._status = ""

    def __enter__(self) -> PullProgress:
        self._progress.start()
        return self

    def __exit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._progress.stop()

    def __call__(self, event: Any) -> None:
        status = str(getattr(event, "status", "") or "")
        total = getattr(event, "total", None)
        completed = getattr(event, "completed", None)
        description = f"{self.label}: {status}" if status else self.label
        if self._task is None:
            self._task = self._progress.add_task(description, total=total)
        self._progress.update(self._task, description=description, total=total, completed=completed or 0)


def _until(expires_at: float | None, keep_alive: float | None, now: Callable[[], float] = time.time) -> str:
    if keep_alive is None:
        return "forever"
    if expires_at is None:
        return "busy"
    seconds = max(0, int(expires_at - now()))
    return f"{seconds // 60}m{seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s"


def _secs(value: Any) -> str:
    return "-" if value is None else f"{float(value):.2f}s"


def ps() -> None:
    """Show the models loaded on the server, their queues and the memory budget."""
    with require_server() as client:
        models = client.ps()
        queues = {s["model"]: s for s in client.scheduler()}
        resources = client.resources()
    table = Table(box=None)
    # Names and digests whole, whatever the width (a pipe or a log is 80 columns wide).
    table.add_column("NAME", no_wrap=True, min_width=max((len(m.name) for m in models), default=4))
    table.add_column("DIGEST", no_wrap=True, min_width=12)
    for col in ("STATE", "MEMORY", "RUNNING", "QUEUED", "WAIT PRED/OBS", "UNTIL"):
        table.add_column(col)
    for m in models:
        memory = human_size(m.measured_bytes or m.estimated_bytes)
        state = m.state + (" (pinned)" if m.pinned else "")
        until = _until(m.expires_at, m.keep_alive)
        qm = queues.get(m.name, {}).get("queue_model", {})
        wait = f"{_secs(qm.get('predicted_wait_s'))}/{_secs(qm.get('observed_wait_mean_s'))}"
        table.add_row(m.name, m.digest[:12], state, memory, str(m.running), str(m.queued), wait, until)
    out_console.print(table)
    for m in models:
        about = [f"engine core pid {m.pid}"] if m.pid else []
        if m.restarts:
            about.append(f"{m.restarts} core(s) died, the last: {m.last_death}")
        if m.weights:
            about.append(f"weights {m.weights}")
        if about:
            out_console.print(f"{m.name}: {'; '.join(about)}")
    budget = resources.get("budget", {}).get("ram_bytes")
    out_console.print(f"memory: {human_size(resources.get('used_bytes'))} of {human_size(budget)} budget")
    inv = resources.get("inventory", {})
    line = (
        f"machine: {inv.get('physical_cores', '?')} cores ({inv.get('logical_cores', '?')} threads), "
        f"RAM {human_size(inv.get('ram_available_bytes'))} available of {human_size(inv.get('ram_total_bytes'))}"
    )
    for gpu in inv.get("gpus", []):
        line += f"; GPU {gpu['index']} {gpu['name']} {human_size(gpu['free_bytes'])} free of {human_size(gpu['total_bytes'])}"
    out_console.print(line)
    _print_training(resources.get("training"))


def _print_training(training: dict[str, Any] | None) -> None:
    """Fine-tuning jobs beside the models: running (memory, threads, step), queued, the policy."""
    if not training:
        return
    running, queued = training.get("jobs", []), training.get("queued", [])
    out_console.print(
        f"training: {len(running)} running, {len(queued)} queued (at most {training.get('max_jobs')} at once); "
        f"while inference waits, jobs yield by: {training.get('yield_policy')}"
    )
    for j in running:
        p = j.get("progress") or {}
        step = f"step {p.get('step', 0)}/{p.get('total_steps', '?')}" if p else "starting"
        state = "paused for inference" if j.get("paused") else f"{j.get('threads')} thread(s)"
        out_console.print(
            f"  {j['id']}  {j['model']}  running  {human_size(j.get('memory_bytes'))}  {state}  {step}"
            + (f"  pid {j['pid']}" if j.get("pid") else "")
        )
    for j in queued:
        out_console.print(f"  {j['id']}  {j['model']}  queued")


def load(
    model: Annotated[str, typer.Argument(help="Model name, e.g. smollm2:135m")],
    keep_alive: Annotated[
        str | None,
        typer.Option("--keep-alive", help="How long to stay loaded when idle: 5m, 1h, -1 (forever)"),
    ] = None,
    pin: Annotated[bool, typer.Option("--pin", help="Never evict or expire it")] = False,
) -> None:
    """Load a model on the server (pulling it first if it is a catalog model you lack)."""
    with require_server() as client, PullProgress(model) as bar:
        client.load_model(model, keep_alive=keep_alive, pin=pin, progress=bar)
    out_console.print(f"loaded {model}")


def unload(model: Annotated[str, typer.Argument(help="Model name")]) -> None:
    """Unload a model from the server (at once, or when its running requests end)."""
    with require_server() as client:
        now = client.unload(model)
    out_console.print(f"unloaded {model}" if now else f"{model} is busy; it unloads when its requests end")


def pin(model: Annotated[str, typer.Argument(help="Model name")]) -> None:
    """Pin a loaded model: never evicted for another, never expired by keep-alive."""
    with require_server() as client:
        client.pin(model)
    out_console.print(f"pinned {model}")


def unpin(model: Annotated[str, typer.Argument(help="Model name")]) -> None:
    """Unpin a model: it may be evicted (least recently used first) and expires again."""
    with require_server() as client:
        client.unpin(model)
    out_console.print(f"unpinned {model}")


def register(app: typer.Typer) -> None:
    app.command("ps")(ps)
    app.command("load")(load)
    app.command("unload")(unload)
    app.command("pin")(pin)
    app.command("unpin")(unpin)
