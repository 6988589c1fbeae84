"""What ``CoreClient.submit`` returns: the server's side of one request, fed once per core step.

The client's reader hands each step's outputs to the event loop in one callback; it appends each
request's new output to that request's :class:`RequestStream` and wakes its consumer through a
:class:`Signal` (one wakeup per step, however many streams a consumer reads: the ``n`` choices of
one generation share one signal). No per-token task, queue or thread hop.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from types import TracebackType

from llmos.engine.base import SeqOutput
from llmos.errors import LLMOSError

Item = SeqOutput | LLMOSError


class Signal:
    """A wakeup that is never lost: :meth:`notify` before :meth:`wait` makes the wait return at once.
    Event-loop thread only."""

    __slots__ = ("_future", "_set")

    def __init__(self) -> None:
        self._set = False
        self._future: asyncio.Future[None] | None = None

    def notify(self) -> None:
        self._set = True
        future = self._future
        if future is not None and not future.done():
            future.set_result(None)

    async def wait(self) -> None:
        if not self._set:
            self._future = asyncio.get_running_loop().create_future()
            try:
                await self._future
            finally:
                self._future = None
        self._set = False


class RequestStream:
    """One submitted sequence: its outputs as they come, its live queue position, and cancel.

    ``async for out in stream`` yields :class:`SeqOutput` items until one with a
    ``finish_reason`` (``stop``, ``length``, ``abort``, or ``timeout`` when the deadline passed
    after output began). It raises DeadlineExceeded when the deadline passes before any output,
    EngineDeadError when the core died, EngineGenerateError when the engine failed this request,
    Overloaded when the model stopped before it ran.

    Leaving the loop early (``break``, an exception, a closed iterator), :meth:`cancel`, or
    ``async with`` exiting aborts the request; the core frees its slot at its next step.
    """

    __slots__ = (
        "_abort",
        "_clock",
        "_consumed",
        "_est_at",
        "_est_start",
        "_items",
        "_position",
        "_running",
        "done",
        "request_id",
        "signal",
        "tenant",
    )

    def __init__(
        self,
        request_id: str,
        tenant: str,
        abort: Callable[[str], None],
        *,
        position: int | None,
        estimated_start: float | None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.request_id = request_id
        self.tenant = tenant
        self._abort = abort
        self._clock = clock
        self._items: deque[Item] = deque()
        self.signal = Signal()
        self.done = False
        """The last item (a finish reason or an error) has arrived."""
        self._consumed = False
        self._running = False
        self._position = position
        self._est_start = estimated_start
        self._est_at = clock()

    # -- the client's side -------------------------------------------------------------------

    def push(self, item: Item) -> bool:
        """Add one output (or the error that ends the request); True if it was the last."""
        self._items.append(item)
        last = isinstance(item, LLMOSError) or item.finish_reason is not None
        if last:
            self.done = True
        self._running = True
        self.signal.notify()
        return last

    def placed(self, position: int | None, estimated_start: float | None) -> None:
        """The core's latest word on where it waits (position None: it holds a slot)."""
        if position is None:
            self._running = True
        else:
            self._running = False
            self._position = position
            self._est_start = estimated_start
            self._est_at = self._clock()

    def rebind(self, abort: Callable[[str], None]) -> None:
        """Cancel through ``abort`` from now on (the request moved to another engine core)."""
        self._abort = abort

    # -- the consumer's side -----------------------------------------------------------------

    def attach(self, signal: Signal) -> None:
        """Wake ``signal`` instead of this stream's own (one consumer reading several streams)."""
        self.signal = signal
        if self._items:
            signal.notify()

    def take(self) -> list[Item]:
        """Every item that has arrived and was not taken yet (never waits)."""
        if not self._items:
            return []
        items = list(self._items)
        self._items.clear()
        return items

    @property
    def queue_position(self) -> int | None:
        """0-based place in the admission order; None once it holds a slot or has finished."""
        if self.done or self._running:
            return None
        return self._position

    @property
    def estimated_start(self) -> float | None:
        """Seconds from now until it is expected to get a slot; 0 while running, None when done
        (or not known)."""
        if self.done:
            return None
        if self._running:
            return 0.0
        if self._est_start is None:
            return None
        return max(0.0, self._est_start - (self._clock() - self._est_at))

    def __aiter__(self) -> AsyncIterator[SeqOutput]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[SeqOutput]:
        if self._consumed:  # the last output was already handed out: a second loop ends at once
            return
        finished = False
        try:
            while True:
                items = self.take()
                if not items:
                    await self.signal.wait()
                    continue
                for item in items:
                    if isinstance(item, LLMOSError):
                        finished = self._consumed = True
                        raise item
                    if item.finish_reason is not None:
                        finished = self._consumed = True
                    yield item
                    if finished:
                        return
        finally:
            if not finished:
                self.cancel_now()

    def cancel_now(self) -> None:
        """Abort the request unless it has ended (non-blocking; the core drops it at its next step)."""
        if not self.done:
            self._abort(self.request_id)

    async def cancel(self) -> None:
        self.cancel_now()

    async def collect(self) -> list[SeqOutput]:
        """Every output until the last (convenience for non-streaming callers)."""
        return [out async for out in self]

    async def __aenter__(self) -> RequestStream:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.cancel_now()
