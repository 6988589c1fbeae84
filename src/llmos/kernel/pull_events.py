"""Bridge a blocking registry operation that reports progress through a callback into an
async stream of :class:`PullEvent` values (the server streams them; the CLI draws a bar)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, Callable

from llmos.domain.manifest import Manifest
from llmos.domain.progress import Progress, ProgressFn
from llmos.kernel.types import PullEvent

Operation = Callable[[ProgressFn], Manifest]
"""A blocking call given a progress callback, returning the stored manifest."""


def to_event(progress: Progress) -> PullEvent:
    """A registry progress report as the pull event the server streams."""
    return PullEvent(
        status=progress.phase, completed=progress.completed, total=progress.total, digest=progress.digest
    )


async def stream_operation(operation: Operation) -> AsyncGenerator[PullEvent, None]:
    """Run ``operation`` in a thread; yield its progress, then a final ``done`` event.

    Errors the operation raises are raised from the iterator after the progress seen so far.
    """
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[PullEvent] = asyncio.Queue()

    def report(progress: Progress) -> None:
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
