"""Bridge a blocking registry operation that reports progress through a callback into an
async stream of :class:`PullEvent` values (the server streams them; the CLI draws a bar)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, Callable
from typing import Any

from llmos.kernel.types import PullEvent
from llmos.registry.manifest import Manifest

Operation = Callable[[Callable[[Any], None]], Manifest]
"""A blocking call given a progress callback, returning the stored manifest."""


def to_event(progress: Any) -> PullEvent:
    """Read a registry progress report (any object with status/completed/total/digest fields)."""
    if isinstance(progress, PullEvent):
        return progress
    if isinstance(progress, str):
        return PullEvent(status=progress)
    if isinstance(progress, dict):
        get: Callable[[str], Any] = progress.get
    else:

        def get(key: str) -> Any:
            return getattr(progress, key, None)

    status = get("status") or get("message") or get("phase") or "working"
    completed = get("completed") if get("completed") is not None else get("done_bytes")
    total = get("total") if get("total") is not None else get("total_bytes")
    return PullEvent(
        status=str(status),
        completed=int(completed) if isinstance(completed, int | float) else None,
        total=int(total) if isinstance(total, int | float) else None,
        digest=str(get("digest")) if get("digest") else None,
    )


async def stream_operation(operation: Operation) -> AsyncGenerator[PullEvent, None]:
    """Run ``operation`` in a thread; yield its progress, then a final ``done`` event.

    Errors the operation raises are raised from the iterator after the progress seen so far.
    """
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[PullEvent] = asyncio.Queue()

    def report(progress: Any) -> None:
        loop.call_soon_threadsafe(queue.put_nowait, to_event(progress))

    task = asyncio.ensure_future(asyncio.to_thread(operation, report))
    try:
        while not task.done() or not queue.empty():
            getter = asyncio.ensure_future(queue.get())
            await asyncio.wait({getter, task}, return_when=asyncio.FIRST_COMPLETED)
            if getter.done():
                yield getter.result()
            else:
                getter.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await getter
        manifest = task.result()
        yield PullEvent(
            status="success", digest=manifest.digest, total=manifest.size, completed=manifest.size, done=True
        )
    finally:
        if not task.done():
            # The thread cannot be interrupted; let it finish in the background (the
            # registry's writes are atomic, so an abandoned pull leaves nothing half-written).
            task.add_done_callback(lambda t: t.exception() if not t.cancelled() else None)
