"""An incremental decoder of ``text/event-stream`` (the WHATWG server-sent events format).

Bytes go in as they arrive from the network, in chunks of any size (a line, an event, or a
multibyte character may be split across chunks); complete events come out. Lines end with
``\\n``, ``\\r\\n`` or ``\\r``; ``:`` lines are comments; ``data`` lines of one event are joined
with ``\\n``; a blank line dispatches the event. An event left unterminated when the stream ends
is discarded, as the specification says (a truncated stream must not look complete).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_LINE_END = re.compile(rb"\r\n|\r|\n")


@dataclass(frozen=True)
class ServerSentEvent:
    data: str
    event: str = "message"
    id: str | None = None


class SSEDecoder:
    """Feed bytes with :meth:`feed`; each call returns the events completed by those bytes."""

    def __init__(self) -> None:
        self._buffer = b""
        self._skip_lf = False
        self._data: list[str] = []
        self._event = ""
        self._last_id: str | None = None
        self._started = False

    def feed(self, chunk: bytes) -> list[ServerSentEvent]:
        if self._skip_lf and chunk.startswith(b"\n"):
            # The previous chunk ended in "\r": this "\n" completes the same line ending.
            chunk = chunk[1:]
        self._skip_lf = False
        self._buffer += chunk
        events: list[ServerSentEvent] = []
        pos = 0
        while match := _LINE_END.search(self._buffer, pos):
            if match.group() == b"\r" and match.end() == len(self._buffer):
                self._skip_lf = True  # a "\n" may follow in the next chunk
            line = self._buffer[pos : match.start()]
            pos = match.end()
            event = self._line(line)
            if event is not None:
                events.append(event)
        self._buffer = self._buffer[pos:]
        return events

    def _line(self, raw: bytes) -> ServerSentEvent | None:
        if not self._started:
            self._started = True
            raw = raw.removeprefix(b"\xef\xbb\xbf")
        line = raw.decode("utf-8", errors="replace")
        if not line:
            return self._dispatch()
        if line.startswith(":"):
            return None
        name, sep, value = line.partition(":")
        if sep and value.startswith(" "):
            value = value[1:]
        if name == "data":
            self._data.append(value)
        elif name == "event":
            self._event = value
        elif name == "id" and "\0" not in value:
            self._last_id = value
        return None

    def _dispatch(self) -> ServerSentEvent | None:
        if not self._data:
            self._event = ""
            return None
        event = ServerSentEvent(data="\n".join(self._data), event=self._event or "message", id=self._last_id)
        self._data = []
        self._event = ""
        return event
