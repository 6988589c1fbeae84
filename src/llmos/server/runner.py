"""Running the app under uvicorn with llmos's shutdown: on SIGTERM/SIGINT the server reports
draining at once (``/ready`` 503), stops accepting, lets in-flight requests finish for up to
the drain timeout, then aborts the rest and unloads every model (the app's lifespan)."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Generator
from types import FrameType

import uvicorn
from fastapi import FastAPI

from llmos.server.lifecycle import Lifecycle

log = logging.getLogger(__name__)


class LLMOSServer(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, lifecycle: Lifecycle) -> None:
        super().__init__(config)
        self.lifecycle = lifecycle

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if self.lifecycle.phase != "draining":
            log.info("signal %s: draining in-flight requests, then stopping", sig)
        self.lifecycle.mark_draining()
        super().handle_exit(sig, frame)

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        with super().capture_signals():
            yield
            # uvicorn re-raises a captured signal after shutting down; a graceful stop exits 0.
            self._captured_signals.clear()


def server_for(
    app: FastAPI,
    lifecycle: Lifecycle,
    *,
    host: str,
    port: int,
    drain_timeout: float,
    log_level: str = "info",
) -> LLMOSServer:
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        lifespan="on",
        timeout_graceful_shutdown=max(1, round(drain_timeout)),
        log_level=log_level.lower(),
        proxy_headers=False,
        server_header=False,
    )
    return LLMOSServer(config, lifecycle)
