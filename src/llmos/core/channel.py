"""The transport seam between the server and an engine core: a two-way channel of messages.

The core's loop (:func:`llmos.core.engine_core.serve`) and the server's client
(:class:`llmos.core.client.CoreClient`) only ever ``send`` and ``recv`` on a :class:`Channel`;
how the messages travel is the host's business:

* :class:`PipeChannel`: a ``multiprocessing`` pipe to a child process (messages pickled), which
  the server's event loop can read without a thread;
* :class:`QueueChannel`: in-process queues, for a core on a thread (tests, benchmarks).

A later host (a Ray actor) brings its own channel; nothing else changes.
"""

from __future__ import annotations

import os
import pickle
import queue
import select
import struct
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
    """A channel over one end of a duplex ``multiprocessing`` pipe (a socket pair), in frames of
    its own: an 8-byte length, then the pickled message.

    Blocking by default (the core's side). The server's side may switch to :meth:`nonblocking`
    once the core is up and let its event loop read: the loop watches :meth:`fileno` and calls
    :meth:`read_ready` when it is readable — one wakeup per batch of messages, no reader thread
    between the pipe and the loop. ``send`` works in both modes (from any thread)."""

    def __init__(self, conn: Connection) -> None:
        self._fd = os.dup(conn.fileno())
        conn.close()
        self._send_lock = threading.Lock()
        self._rbuf = bytearray()
        self._closed = False

    def fileno(self) -> int:
        return self._fd

    def send(self, msg: Any) -> None:
        data = pickle.dumps(msg, protocol=pickle.HIGHEST_PROTOCOL)
        frame = _HEADER.pack(len(data)) + data
        with self._send_lock:
            if self._closed:
                raise EOFError("the channel is closed")
            try:
                _write_all(self._fd, memoryview(frame))
            except OSError as exc:  # a broken pipe: the other end is gone
                raise EOFError(str(exc)) from exc

    def recv(self) -> Any:
        """The next message, waiting for it (blocking mode only)."""
        (size,) = _HEADER.unpack(self._read_exact(_HEADER.size))
        return pickle.loads(self._read_exact(size))

    def nonblocking(self) -> None:
        """From now on only :meth:`read_ready` reads; sends wait for room without blocking reads."""
        os.set_blocking(self._fd, False)

    def read_ready(self) -> list[Any]:
        """The messages that have arrived whole, reading once without waiting (non-blocking mode);
        an empty list when a frame is still incomplete. Raises EOFError once the other end is gone."""
        try:
            chunk = os.read(self._fd, _READ_SIZE)
        except BlockingIOError:
            return []
        except OSError as exc:
            raise EOFError(str(exc)) from exc
        if not chunk:
            raise EOFError("the other end closed the channel")
        buf = self._rbuf
        buf += chunk
        out: list[Any] = []
        start = 0
        while len(buf) - start >= _HEADER.size:
            (size,) = _HEADER.unpack_from(buf, start)
            end = start + _HEADER.size + size
            if end > len(buf):
                break
            out.append(pickle.loads(memoryview(buf)[start + _HEADER.size : end]))
            start = end
        del buf[:start]
        return out

    def close(self) -> None:
        with self._send_lock:  # never under a send (its fd number could be reused)
            if not self._closed:
                self._closed = True
                os.close(self._fd)

    def _read_exact(self, n: int) -> bytes:
        parts: list[bytes] = []
        while n:
            if self._closed:
                raise EOFError("the channel is closed")
            try:
                chunk = os.read(self._fd, n)
            except (OSError, ValueError) as exc:
                raise EOFError(str(exc)) from exc
            if not chunk:
                raise EOFError("the other end closed the channel")
            parts.append(chunk)
            n -= len(chunk)
        return b"".join(parts)


_HEADER = struct.Struct("!Q")
_READ_SIZE = 1 << 18


def _write_all(fd: int, data: memoryview) -> None:
    while data:
        try:
            n = os.write(fd, data)
        except BlockingIOError:  # non-blocking and the pipe is full: wait for room
            select.select([], [fd], [])
            continue
        data = data[n:]


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
