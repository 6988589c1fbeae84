"""The path of one request through llmos's packages, traced with ``sys.setprofile``.

The trace follows what a route drives: every call made (directly or further down) from the
code of the route's module, the work it hands to threads (``asyncio.to_thread``) included. A
*call edge* is code of one package calling a function of another; resuming a coroutine or a
generator that is already running (an ``await`` or ``async for`` going on) is not a new call.

ARCHITECTURE.md's picture says which edges a request may take: down the layers, and from the
server only into the kernel and the server's own doors (``security`` for keys, limits and usage;
``observability`` for logs and metrics). Any other edge makes the path double back:

- an **upward** edge: a package below calling into one above it (a callback into the server);
- a **bypass**: the server calling straight into a package below the kernel.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from inspect import CO_ASYNC_GENERATOR, CO_COROUTINE, CO_GENERATOR
from types import FrameType
from typing import Any

LAYERS = {
    "server": 0,
    "kernel": 1,
    "security": 2,
    "resources": 2,
    "registry": 2,
    "data": 2,
    "structured": 2,
    "tasks": 2,
    "observability": 2,
    "core": 3,
    "scheduler": 4,
    "engine": 5,
    "storage": 6,
}
"""Rank in ARCHITECTURE.md's picture (0 on top); packages not named (types, errors, config)
are shared leaves that anyone may call."""

SERVER_DOORS = frozenset({"server", "kernel", "security", "observability"})
"""What server code may call: itself, the kernel, and its doors (auth, limits, usage; logs)."""

_RESUMABLE = CO_COROUTINE | CO_GENERATOR | CO_ASYNC_GENERATOR


def _package(module: object) -> str | None:
    if not isinstance(module, str) or not module.startswith("llmos."):
        return None
    return module.split(".")[1]


def package_of(frame: FrameType | None) -> str | None:
    return None if frame is None else _package(frame.f_globals.get("__name__"))


@dataclass
class PathTrace:
    edges: list[tuple[str, str]] = field(default_factory=list)
    """Every call edge, in call order (repeats kept)."""
    entered: dict[tuple[str, str], list[str]] = field(default_factory=dict)
    """The first few functions each edge entered."""

    def order(self) -> list[str]:
        """The packages in the order the request first entered them."""
        return list(dict.fromkeys(p for edge in self.edges for p in edge))

    def upward(self) -> list[tuple[str, str]]:
        return sorted({(a, b) for a, b in self.edges if LAYERS.get(b, 99) < LAYERS.get(a, 99)})

    def bypasses(self) -> list[tuple[str, str]]:
        return sorted({(a, b) for a, b in self.edges if a == "server" and b not in SERVER_DOORS})

    def doubling_back(self) -> list[tuple[str, str]]:
        """The edges that make the path double back (upward ones and bypasses)."""
        return sorted({*self.upward(), *self.bypasses()})

    def describe(self) -> str:
        lines = [" -> ".join(self.order())]
        lines += [f"  {a} -> {b}: {', '.join(self.entered[(a, b)])}" for a, b in self.doubling_back()]
        return "\n".join(lines)


@contextmanager
def trace_route(route_module: str) -> Iterator[PathTrace]:
    """Trace what the code of ``route_module`` (e.g. ``llmos.server.routes.openai_chat``) drives."""
    trace = PathTrace()
    lock = threading.Lock()
    running: dict[int, FrameType] = {}  # resumable frames already started (held: ids stay unique)

    def driven(frame: FrameType | None) -> bool:
        while frame is not None:
            if frame.f_globals.get("__name__") == route_module:
                return True
            frame = frame.f_back
        return False

    def record(caller: str | None, callee: str | None, name: str) -> None:
        if caller is None or callee is None or caller == callee:
            return
        with lock:
            trace.edges.append((caller, callee))
            names = trace.entered.setdefault((caller, callee), [])
            if len(names) < 4 and name not in names:
                names.append(name)

    def profile(frame: FrameType, event: str, arg: Any) -> None:
        if event != "call":
            return
        code = frame.f_code
        if code.co_name == "to_thread" and frame.f_globals.get("__name__") == "asyncio.threads":
            func: Callable[..., Any] | None = frame.f_locals.get("func")
            target = getattr(func, "func", func)  # a functools.partial's function
            if target is not None and driven(frame):
                record(package_of(frame.f_back), _package(target.__module__), target.__qualname__)
            return
        callee = package_of(frame)
        if callee is None:
            return
        if code.co_flags & _RESUMABLE:
            if id(frame) in running:
                return
            running[id(frame)] = frame
        if driven(frame):
            record(package_of(frame.f_back), callee, code.co_qualname)

    threading.setprofile(profile)
    sys.setprofile(profile)
    try:
        yield trace
    finally:
        sys.setprofile(None)
        threading.setprofile(None)  # type: ignore[arg-type]
