"""``llmos serve``: the HTTP server, with the default model pulled and loaded before it reports ready."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Annotated

import typer

from llmos import __version__
from llmos.cli.runtime import PullProgress, err_console
from llmos.errors import LLMOSError, ModelNotFound

if TYPE_CHECKING:
    from llmos.config import Config
    from llmos.kernel import Kernel
    from llmos.server import Lifecycle
    from llmos.server.app import Startup

log = logging.getLogger(__name__)


def default_model_startup(config: Config, *, load: bool = True) -> Startup:
    """The startup work of ``llmos serve``: pull the default model if it is missing (with a
    progress bar), then load it. A failure is logged and leaves the server degraded: it still
    serves other models, but ``/ready`` answers 503 naming the failure."""

    async def startup(kernel: Kernel, life: Lifecycle) -> None:
        name = config.default_model
        try:
            try:
                await kernel.resolve(name)
            except ModelNotFound:
                life.mark_starting(f"pulling the default model {name}")
                with PullProgress(f"pulling {name}") as bar:
                    async for event in kernel.pull(name):
                        bar(event)
            if load:
                life.mark_starting(f"loading the default model {name}")
                await kernel.load(name)
                log.info(
                    'ready: %s answers on http://%s:%d (try: llmos run %s "Hello")',
                    name,
                    config.host,
                    config.port,
                    name,
                )
        except LLMOSError as exc:
            log.error("the default model %s is not available: %s", name, exc.message)
            life.mark_degraded(f"the default model {name} is not available: {exc.message}")

    return startup


def serve(
    host: Annotated[str | None, typer.Option(help="Address to listen on (default 127.0.0.1)")] = None,
    port: Annotated[int | None, typer.Option(help="Port to listen on (default 8470)")] = None,
    drain_timeout: Annotated[
        float, typer.Option(help="Seconds in-flight requests get to finish on shutdown")
    ] = 30.0,
    no_default_model: Annotated[
        bool, typer.Option("--no-default-model", help="Do not pull and load the default model at start")
    ] = False,
    cluster: Annotated[
        str | None,
        typer.Option(
            "--cluster",
            help="Run model replicas on Ray: 'auto' (a local head), ray://HOST:PORT or HOST:PORT "
            "(join a cluster); env LLMOS_CLUSTER",
        ),
    ] = None,
    replicas: Annotated[
        str | None,
        typer.Option("--replicas", help="Replicas per model with --cluster: N, or MIN..MAX to autoscale"),
    ] = None,
) -> None:
    """Run the llmos server: OpenAI-compatible API under /v1, admin API under /api."""
    # The server and the kernel are imported here: no other command needs them.
    from llmos.config import load_config
    from llmos.kernel import build_kernel
    from llmos.observability import configure_logging
    from llmos.procs import freeze_startup_objects
    from llmos.server import Lifecycle, create_app
    from llmos.server.runner import server_for

    config = load_config(host=host, port=port, cluster=cluster, replicas=replicas)
    configure_logging(config.log_level, config.log_format)
    kernel = build_kernel(config)
    life = Lifecycle()
    startup = None if no_default_model else default_model_startup(config)
    app = create_app(kernel, startup=startup, lifecycle=life, drain_timeout=drain_timeout)
    banner = (
        f"llmos {__version__} serving on http://{config.host}:{config.port} "
        f"(OpenAI API at /v1, admin at /api, console at /ui, metrics at /metrics, docs at /docs); "
        f"home {config.paths.home}"
    )
    if config.log_format == "json":
        log.info("%s", banner)  # stderr stays one JSON object per line
    else:
        err_console.print(banner, soft_wrap=True)  # one line, whatever the width
    server = server_for(
        app, life, host=config.host, port=config.port, drain_timeout=drain_timeout, log_level=config.log_level
    )
    configure_logging(config.log_level, config.log_format)  # uvicorn's Config installed its own handlers
    freeze_startup_objects()  # a process that serves from here on: its import-time heap stays
    server.run()


def register(app: typer.Typer) -> None:
    app.command("serve")(serve)
