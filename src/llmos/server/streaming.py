"""A streaming response that always runs its cleanup, and a disconnect-aware wait.

Starlette stops a stream when the client goes away, but the body iterator may then sit
un-closed until garbage collection. Generation must stop at the next engine step, so
:class:`CleanupStreamingResponse` listens for ``http.disconnect`` itself, stops the stream,
and awaits ``on_close`` (shielded from cancellation) however the response ended. Given a
``cut``, it also ends the stream when that completes (the drain timeout passed), with the
closing bytes ``cut`` returns (an error event and ``[DONE]``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import TypeVar

import anyio
from starlette.requests import Request
from starlette.responses import StreamingResponse
from starlette.types import Message, Receive, Scope, Send

from llmos.errors import Overloaded
from llmos.server.lifecycle import Lifecycle

T = TypeVar("T")
log = logging.getLogger(__name__)

Cut = Callable[[], Awaitable[bytes]]
"""Completes when a stream must end early; returns the bytes that close it."""


class ClientDisconnected(Exception):
    """The client went away before the response was ready."""


class CleanupStreamingResponse(StreamingResponse):
    def __init__(
        self,
        content: AsyncIterator[bytes],
        *,
        on_close: Callable[[], Awaitable[None]],
        media_type: str,
        headers: Mapping[str, str] | None = None,
        cut: Cut | None = None,
    ) -> None:
        super().__init__(content, media_type=media_type, headers=headers)
        self._on_close = on_close
        self._cut = cut

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        sent = {"start": False, "end": False}

        async def tracked(message: Message) -> None:
            if message["type"] == "http.response.start":
                sent["start"] = True
            elif message["type"] == "http.response.body" and not message.get("more_body", False):
                sent["end"] = True
            await send(message)

        try:
            async with anyio.create_task_group() as tg:
                streaming = anyio.CancelScope()
                streamed = anyio.Event()

                async def stream() -> None:
                    with streaming:
                        try:
                            await self.stream_response(tracked)
                        except OSError:
                            pass  # the client went away mid-send
                        except Exception:
                            # Headers are sent: nothing left to tell the client but a closed stream.
                            log.exception("stream failed after the response started")
                    streamed.set()
                    if not streaming.cancel_called:
                        tg.cancel_scope.cancel()

                async def cut_off(cut: Cut) -> None:
                    closing = await cut()
                    streaming.cancel()
                    await streamed.wait()
                    with contextlib.suppress(OSError):
                        if not sent["start"]:
                            await send(
                                {
                                    "type": "http.response.start",
                                    "status": self.status_code,
                                    "headers": self.raw_headers,
                                }
                            )
                        if not sent["end"]:
                            await send({"type": "http.response.body", "body": closing, "more_body": False})
                    tg.cancel_scope.cancel()

                tg.start_soon(stream)
                if self._cut is not None:
                    tg.start_soon(cut_off, self._cut)
                await _wait_for_disconnect(receive)
                tg.cancel_scope.cancel()
        finally:
            with anyio.CancelScope(shield=True):
                await self._on_close()
        if self.background is not None:
            await self.background()


async def _wait_for_disconnect(receive: Receive) -> None:
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return


async def unless_disconnected(request: Request, work: Awaitable[T], *, life: Lifecycle | None = None) -> T:
    """Await ``work``; if the client disconnects first, cancel it and raise ClientDisconnected.
    With ``life``, a drain that cuts the running requests first cancels it too, and raises
    Overloaded (503: the server is shutting down)."""
    task = asyncio.ensure_future(work)
    watchers = {asyncio.ensure_future(_wait_for_disconnect(request.receive))}
    if life is not None:
        watchers.add(asyncio.ensure_future(life.until_cut()))
    try:
        await asyncio.wait({task, *watchers}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for watcher in watchers:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher
    if task.done():
        return task.result()
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    if life is not None and life.is_cut:
        raise Overloaded(SHUTTING_DOWN, retry_after=SHUTDOWN_RETRY_S)
    raise ClientDisconnected("client disconnected")


SHUTTING_DOWN = "the server is shutting down and cut this request at its drain timeout; retry"
SHUTDOWN_RETRY_S = 1.0
