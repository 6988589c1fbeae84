"""What ``ModelScheduler.submit`` returns: the consumer's side of one request."""

from __future__ import annotations

from collections.abc import AsyncIterator
from types import TracebackType
from typing import Protocol

from llmos.engine.base import SeqOutput
from llmos.scheduler.ticket import Ticket


class TicketOwner(Protocol):
    """What a handle needs of its scheduler (``ModelScheduler``): positions and cancellation."""

    def position_of(self, ticket: Ticket) -> tuple[int | None, float | None]: ...

    def cancel(self, ticket: Ticket) -> None: ...


class RequestHandle:
    """Async iterator over a request's outputs, plus its live queue position.

    ``async for out in handle`` yields :class:`SeqOutput` items until one with a
    ``finish_reason`` (``stop``, ``length``, ``abort``, or ``timeout`` when the deadline passed
    after output began). It raises :class:`DeadlineExceeded` when the deadline passes before any
    output, :class:`EngineDeadError` when the engine died, :class:`EngineGenerateError` when the
    engine failed this request, :class:`Overloaded` when the scheduler stopped before it ran.

    Leaving the loop early (``break``, an exception, a closed iterator), :meth:`cancel`, or
    ``async with`` exiting aborts the request; its slot is freed within one engine step.
    """

    def __init__(self, ticket: Ticket, scheduler: TicketOwner) -> None:
        self._ticket = ticket
        self._scheduler = scheduler
        self._consumed = False

    @property
    def request_id(self) -> str:
        return self._ticket.request_id

    @property
    def queue_position(self) -> int | None:
        """0-based place in the admission order; None once it holds a slot or has finished."""
        return self._scheduler.position_of(self._ticket)[0]

    @property
    def estimated_start(self) -> float | None:
        """Seconds from now until it is expected to get a slot; 0 while running, None when done."""
        return self._scheduler.position_of(self._ticket)[1]

    @property
    def done(self) -> bool:
        return self._ticket.done

    def __aiter__(self) -> AsyncIterator[SeqOutput]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[SeqOutput]:
        if self._consumed:  # the last output was already handed out: a second loop ends at once
            return
        finished = False
        try:
            while True:
                item = await self._ticket.outbox.get()
                if isinstance(item, BaseException):
                    finished = self._consumed = True
                    raise item
                if item.finish_reason is not None:
                    finished = self._consumed = True
                yield item
                if finished:
                    return
        finally:
            if not finished:
                self._scheduler.cancel(self._ticket)

    async def cancel(self) -> None:
        """Abort the request; the step thread frees its slot before its next engine step."""
        self._scheduler.cancel(self._ticket)

    async def collect(self) -> list[SeqOutput]:
        """Every output until the last (convenience for non-streaming callers)."""
        return [out async for out in self]

    async def __aenter__(self) -> RequestHandle:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if not self._ticket.done:
            self._scheduler.cancel(self._ticket)
