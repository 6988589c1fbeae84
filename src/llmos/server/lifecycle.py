"""The server's readiness (starting → ready | degraded → draining) and its drain.

``degraded``: the start-up work failed (the default model could not be pulled or loaded). The
server serves every other model, but ``/ready`` answers 503 saying why, so an orchestrator keeps
traffic meant for that model away and an operator sees it; fix the cause and restart.

A drain lets the requests in flight finish: ``/ready`` answers 503 at once (the server keeps
listening, so a load balancer sees it), new token-spending requests get 503 with ``Retry-After``,
and the requests still running when the drain timeout passes are *cut*: their streams end with
an error event and ``[DONE]``, and their usage rows carry the error's status (see
:func:`llmos.server.convert.cut_when_drained`).
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Literal

Phase = Literal["starting", "ready", "degraded", "draining"]

DRAIN_GRACE_S = 2.0
"""After cutting the last requests, how long the drain waits for their streams to close."""


class Lifecycle:
    def __init__(self) -> None:
        self.phase: Phase = "starting"
        self.detail = "starting"
        self.in_flight = 0
        """Requests being served (health checks and metrics scrapes aside)."""
        self._idle = asyncio.Event()
        self._idle.set()
        self._cut = asyncio.Event()

    @property
    def ready(self) -> bool:
        return self.phase == "ready"

    @property
    def draining(self) -> bool:
        return self.phase == "draining"

    def mark_ready(self) -> None:
        if self.phase == "starting":
            self.phase = "ready"
            self.detail = "ready"

    def mark_degraded(self, detail: str) -> None:
        """The start-up work failed: ``/ready`` stays 503 with ``detail`` (the reason)."""
        if self.phase == "starting":
            self.phase = "degraded"
            self.detail = detail

    def mark_starting(self, detail: str) -> None:
        if self.phase == "starting":
            self.detail = detail

    def mark_draining(self) -> None:
        self.phase = "draining"
        self.detail = "draining: finishing in-flight requests"

    # ---- requests in flight (called on the event loop) --------------------------------------

    def enter(self) -> None:
        self.in_flight += 1
        self._idle.clear()

    def leave(self) -> None:
        self.in_flight = max(0, self.in_flight - 1)
        if self.in_flight == 0:
            self._idle.set()

    async def wait_idle(self, seconds: float) -> bool:
        """Whether every request in flight ended within ``seconds``."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._idle.wait(), max(0.0, seconds))
        return self._idle.is_set()

    # ---- cutting what the drain timeout leaves ----------------------------------------------

    @property
    def is_cut(self) -> bool:
        return self._cut.is_set()

    def cut(self) -> None:
        """End every request still running (their streams close with an error event)."""
        self.detail = "draining: cutting the requests still running"
        self._cut.set()

    async def until_cut(self) -> None:
        await self._cut.wait()


async def drain(life: Lifecycle, seconds: float, *, grace: float = DRAIN_GRACE_S) -> bool:
    """Drain the server: let requests in flight finish within ``seconds``, then cut the rest and
    give their streams ``grace`` seconds to close. True when none had to be cut."""
    life.mark_draining()
    if await life.wait_idle(seconds):
        return True
    life.cut()
    await life.wait_idle(grace)
    return False
