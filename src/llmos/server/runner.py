"""Running the app under uvicorn with llmos's shutdown. On SIGTERM/SIGINT the server drains
while it still listens (:func:`llmos.server.lifecycle.drain`): ``/ready`` answers 503 at once,
new token-spending requests get 503, in-flight requests finish for up to the drain timeout and
the rest are cut (an error event and ``[DONE]`` on their streams). Only then does uvicorn stop
accepting and the app's lifespan unload every model. A second signal stops at once."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Generator
from types import FrameType

import uvicorn
from fastapi import FastAPI

from llmos.server.lifecycle import Lifecycle, drain

log = logging.getLogger(__name__)


class LLMOSServer(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, lifecycle: Lifecycle, drain_timeout: float) -> None:
        super().__init__(config)
        self.lifecycle = lifecycle
        self.drain_timeout = drain_timeout
        self._loop: asyncio.AbstractEventLoop | None = None
        self._draining: asyncio.Future[None] | None = None

    async def serve(self, sockets: list[socket.socket] | None = None) -> None:
        self._loop = asyncio.get_running_loop()
        await super().serve(sockets=sockets)

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if self._loop is None or self.lifecycle.draining or self._loop.is_closed():
            super().handle_exit(sig, frame)  # not serving yet, or a second signal: stop now
            return
        log.info("signal %s: draining in-flight requests (up to %gs), then stopping", sig, self.drain_timeout)
        self.lifecycle.mark_draining()
        self._loop.call_soon_threadsafe(self._start_drain, sig, frame)

    def _start_drain(self, sig: int, frame: FrameType | None) -> None:
        async def run() -> None:
            try:
                if not await drain(self.lifecycle, self.drain_timeout):
                    log.warning("drain timeout passed: cut the requests still running")
            finally:
                super(LLMOSServer, self).handle_exit(sig, frame)

        self._draining = asyncio.ensure_future(run())

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
        # The drain happened before uvicorn stops (see LLMOSServer): what is left are streams
        # closing after their cut.
        timeout_graceful_shutdown=2,
        log_level=log_level.lower(),
        proxy_headers=False,
        server_header=False,
    )
    return LLMOSServer(config, lifecycle, drain_timeout)
