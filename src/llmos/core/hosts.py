"""Where an engine core runs: a child process (the server's default) or a thread (tests, benchmarks).

A host starts a core running :func:`llmos.core.engine_core.serve` and hands back the client's end
of the :class:`~llmos.core.channel.Channel` to it; it knows the core's pid and how to stop it.
:class:`~llmos.core.client.CoreClient` calls :meth:`CoreHost.start` from its own long-lived reader
thread, never from the event loop.

:class:`ProcessHost`: one OS process per core, so a crash (segfault, OOM kill, SIGKILL) takes only
that model down. The child asks the kernel for SIGKILL when its parent dies
(``PR_SET_PDEATHSIG``, Linux) and runs a watchdog thread that exits when its parent pid changes;
PDEATHSIG fires when the *thread* that started the child exits, which is why the client starts it
from the reader thread that lives exactly as long as the core.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import threading
import time
from collections.abc import Callable
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import Any, Protocol

from llmos.core.channel import Channel, PipeChannel, QueueChannel
from llmos.core.engine_core import serve
from llmos.engine.backends import make_engine
from llmos.engine.base import Engine
from llmos.procs import describe_exit, die_with_parent, freeze_startup_objects

logger = logging.getLogger(__name__)


class CoreHost(Protocol):
    """Starts and stops one engine core."""

    def start(self) -> Channel:
        """Start the core; the client's end of its channel. Blocking (call it off the event loop)."""
        ...

    @property
    def pid(self) -> int | None:
        """The process the core runs in, once started."""
        ...

    def exit_detail(self) -> str:
        """How the core ended, for error messages (e.g. ``exit code -9``), or ""."""
        ...

    def stop(self, timeout: float) -> None:
        """Wait up to ``timeout`` seconds for the core to end, then end it. Blocking, idempotent."""
        ...


# --- a child process ------------------------------------------------------------------------


def process_main(conn: Connection, parent_pid: int) -> None:
    """Entry point of a core's process: serve until told to stop, the pipe closes or the engine dies."""
    die_with_parent(parent_pid)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the server decides when we stop
    serve(PipeChannel(conn), make_engine, after_load=freeze_startup_objects)


class ProcessHost:
    """Runs the core in a child process (``spawn``: a fresh interpreter, no inherited state)."""

    def __init__(self, *, start_method: str = "spawn") -> None:
        self._mp: Any = multiprocessing.get_context(start_method)
        self._proc: BaseProcess | None = None

    def start(self) -> Channel:
        parent_conn, child_conn = self._mp.Pipe(duplex=True)
        proc = self._mp.Process(
            target=process_main, args=(child_conn, os.getpid()), name="llmos-core", daemon=True
        )
        proc.start()
        child_conn.close()
        self._proc = proc
        logger.info("started engine core pid %s", proc.pid)
        return PipeChannel(parent_conn)

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def exit_detail(self) -> str:
        proc = self._proc
        if proc is None:
            return ""
        proc.join(0.5)
        code = proc.exitcode
        if code is None:
            return ""
        return describe_exit(code)

    def stop(self, timeout: float) -> None:
        proc = self._proc
        if proc is None:
            return
        proc.join(timeout)
        if proc.is_alive():
            if timeout > 0:
                logger.warning("engine core pid %s did not stop in %.0f s; killing it", proc.pid, timeout)
            proc.kill()
            proc.join(5.0)


# --- a thread -------------------------------------------------------------------------------


class ThreadHost:
    """Runs the core on a thread of this process, over engines from ``make_engine`` (the fake
    engine in tests, a real one in benchmarks). The engine's crash is this process's crash."""

    def __init__(
        self, make_engine: Callable[[str], Engine], *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._make_engine = make_engine
        self._clock = clock
        self._thread: threading.Thread | None = None

    def start(self) -> Channel:
        client, core = QueueChannel.pair()
        self._thread = threading.Thread(
            target=serve,
            args=(core, self._make_engine),
            kwargs={"clock": self._clock},
            name="llmos-core",
            daemon=True,
        )
        self._thread.start()
        return client

    @property
    def pid(self) -> int | None:
        return os.getpid() if self._thread is not None else None

    def exit_detail(self) -> str:
        return ""

    def stop(self, timeout: float) -> None:
        if self._thread is not None:
            self._thread.join(timeout)
