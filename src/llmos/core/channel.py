"""The transport seam between the server and an engine core: a two-way channel of messages.

The core's loop (:func:`llmos.core.engine_core.serve`) and the server's client
(:class:`llmos.core.client.CoreClient`) only ever ``send`` and ``recv`` on a :class:`Channel`;
how the messages travel is the host's business:

* :class:`PipeChannel`: a ``multiprocessing`` pipe to a child process (messages pickled);
* :class:`QueueChannel`: in-process queues, for a core on a thread (tests, benchmarks).

A later host (a Ray actor) brings its own channel; nothing else changes.
"""

from __future__ import annotations

import queue
import threading
from multiprocessing.connection import Connection
from typing import Any, Protocol


class Channel(Protocol):
    """One end of a two-way message channel.

    ``send`` may be called from several threads; ``recv`` from one thread at a time. Both raise
    EOFError once the other end has gone (closed, or its process died)."""

    def send(self, msg: Any) -> None: ...

    def recv(self) -> Any: ...

    def close(self) -> None: ...


class PipeChannel:
    """A channel over one end of a duplex ``multiprocessing`` pipe."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn
        self._send_lock = threading.Lock()

    def send(self, msg: Any) -> None:
        try:
            with self._send_lock:
                self._conn.send(msg)
        except (OSError, ValueError) as exc:  # a broken pipe, or closed on this side
            raise EOFError(str(exc)) from exc

    def recv(self) -> Any:
        try:
            return self._conn.recv()
        except (OSError, ValueError) as exc:
            raise EOFError(str(exc)) from exc

    def close(self) -> None:
        self._conn.close()


_EOF = object()


class QueueChannel:
    """One end of an in-process channel; make both with :meth:`pair`."""

    def __init__(self, inbox: queue.SimpleQueue[Any], outbox: queue.SimpleQueue[Any]) -> None:
        self._inbox = inbox
        self._outbox = outbox
        self._closed = False
        self._peer_closed = False

    @classmethod
    def pair(cls) -> tuple[QueueChannel, QueueChannel]:
        a: queue.SimpleQueue[Any] = queue.SimpleQueue()
        b: queue.SimpleQueue[Any] = queue.SimpleQueue()
        return cls(a, b), cls(b, a)

    def send(self, msg: Any) -> None:
        if self._closed or self._peer_closed:
            raise EOFError("the channel is closed")
        self._outbox.put(msg)

    def recv(self) -> Any:
        if self._peer_closed:
            raise EOFError("the other end closed the channel")
        msg = self._inbox.get()
        if msg is _EOF:
            self._peer_closed = True
            raise EOFError("the other end closed the channel")
        return msg

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._outbox.put(_EOF)
