"""Waiting in tests without sleep-and-hope: poll a condition until it holds or a deadline passes.

``until`` (async: the event loop runs between looks) and ``wait_until`` (blocking) return the
condition's first truthy answer, so a probe can hand back what it found. On the deadline they
fail with an AssertionError naming ``what`` was awaited, for how long, and the last answer.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")


def _timed_out(what: str, within_s: float, last: object) -> AssertionError:
    return AssertionError(f"waited {within_s:g} s for {what}; the last look gave {last!r}")


async def until(
    cond: Callable[[], T | Awaitable[T]], *, within_s: float = 10.0, what: str, every_s: float = 0.005
) -> T:
    """``cond()``'s first truthy answer (awaited when it is awaitable), looked at every ``every_s``."""
    deadline = time.monotonic() + within_s
    while True:
        answer = cond()
        if inspect.isawaitable(answer):
            answer = await answer
        if answer:
            return answer  # type: ignore[return-value]
        if time.monotonic() > deadline:
            raise _timed_out(what, within_s, answer)
        await asyncio.sleep(every_s)


def wait_until(cond: Callable[[], T], *, within_s: float = 10.0, what: str, every_s: float = 0.1) -> T:
    """The blocking twin of :func:`until`, for tests that poll another process."""
    deadline = time.monotonic() + within_s
    while True:
        answer = cond()
        if answer:
            return answer
        if time.monotonic() > deadline:
            raise _timed_out(what, within_s, answer)
        time.sleep(every_s)
