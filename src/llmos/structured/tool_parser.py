"""Read a model's tool-calling answer back into OpenAI ``tool_calls``, whole or streamed.

The answer is plain text, or starts with ``<tool_call>{"name": ..., "arguments": {...}}</tool_call>``
blocks (see :mod:`llmos.structured.tool_prompt`). :func:`parse_answer` reads a finished answer;
:class:`ToolCallStream` reads it piece by piece and emits the deltas an OpenAI stream carries:
content fragments, then per call a first delta with ``index``, ``id`` and ``function.name``
followed by ``function.arguments`` fragments as the model writes them.

The block markup is internal: it never reaches ``content``. An answer cut short (``max_tokens``)
keeps the calls it completed and drops the one it was writing. A call identical to an earlier
one (small models repeat themselves) is dropped, and is a reason to stop generating:
:class:`CallWatcher` says when, and so does :attr:`ToolCallStream.done` (also once the calls
allowed, one without parallel calls, are made).
"""

from __future__ import annotations

import json
import logging
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from llmos.structured.tool_prompt import CALL_CLOSE, CALL_OPEN

log = logging.getLogger(__name__)

IdFactory = Callable[[], str]
_HEAD = re.compile(r'\s*\{\s*"name"\s*:\s*"((?:[^"\\]|\\.)*)"\s*,\s*"arguments"\s*:\s*')


def new_call_id() -> str:
    """An OpenAI-style call id: ``call_`` and 24 random hex digits."""
    return "call_" + secrets.token_hex(12)


@dataclass(frozen=True)
class ToolCall:
    id: str
    name: str
    arguments: str
    """The arguments as a JSON text, as OpenAI sends them."""


@dataclass(frozen=True)
class ParsedAnswer:
    """``content`` is None when the answer is tool calls (as in OpenAI responses)."""

    content: str | None
    tool_calls: tuple[ToolCall, ...] = ()


@dataclass(frozen=True)
class ContentDelta:
    text: str


@dataclass(frozen=True)
class ToolCallDelta:
    """One ``delta.tool_calls`` entry; ``id`` and ``name`` only on a call's first delta."""

    index: int
    arguments: str
    id: str | None = None
    name: str | None = None


StreamDelta = ContentDelta | ToolCallDelta


def parse_answer(
    text: str, *, id_factory: IdFactory = new_call_id, max_calls: int | None = None
) -> ParsedAnswer:
    """Split a finished answer into content or tool calls (at most ``max_calls``).

    An answer of call blocks gives its complete calls, each once (a repeat is dropped), and no
    content: the markup of a block cut short by ``max_tokens``, or of one that does not parse,
    is dropped rather than shown as content. So is an answer that is only the start of the
    opening tag.
    """
    stripped = text.lstrip()
    if not stripped.startswith(CALL_OPEN):
        if stripped and CALL_OPEN.startswith(stripped):
            return ParsedAnswer(None)  # cut inside the opening tag
        return ParsedAnswer(text)
    calls, _, _ = _complete_calls(text, id_factory)
    if max_calls is not None:
        calls = calls[:max_calls]
    return ParsedAnswer(None, tuple(calls))


def _complete_calls(text: str, id_factory: IdFactory) -> tuple[list[ToolCall], bool, int]:
    """The distinct complete calls at the start of ``text``, whether one was repeated, and
    where the last complete block ends."""
    pos = _skip_ws(text, 0)
    calls: list[ToolCall] = []
    seen: set[tuple[str, str]] = set()
    repeated = False
    end_of_last = 0
    decoder = json.JSONDecoder()
    while text.startswith(CALL_OPEN, pos):
        try:
            obj, end = decoder.raw_decode(text, _skip_ws(text, pos + len(CALL_OPEN)))
        except ValueError:
            break  # cut short, or not JSON: what was complete stands
        call = _call_from(obj, lambda: "")
        if call is None:
            break
        pos = _skip_ws(text, end)
        if not text.startswith(CALL_CLOSE, pos):
            break  # the block is not closed yet (or never will be)
        pos = _skip_ws(text, pos + len(CALL_CLOSE))
        end_of_last = pos
        key = (call.name, call.arguments)
        if key in seen:
            repeated = True
            continue
        seen.add(key)
        calls.append(ToolCall(id_factory(), call.name, call.arguments))
    if text[pos:].strip() and not text.startswith(CALL_OPEN, pos):
        log.debug("ignoring %d characters after the tool calls", len(text) - pos)
    return calls, repeated, end_of_last


class CallWatcher:
    """Fed a tool-calling answer as it is generated, says when to stop: a complete call repeats
    an earlier one, or ``max_calls`` distinct calls are made. Plain-text answers never stop it."""

    def __init__(self, max_calls: int | None = None) -> None:
        self.max_calls = max_calls
        self.text = ""
        self._scanned = 0
        self.done = False

    def feed(self, piece: str) -> bool:
        """Add ``piece``; True once generation should stop (and from then on)."""
        if self.done:
            return True
        self.text += piece
        # Only a newly closed block can change the verdict.
        if CALL_CLOSE not in self.text[max(0, self._scanned - len(CALL_CLOSE)) :]:
            return False
        self._scanned = len(self.text)
        if not self.text.lstrip().startswith(CALL_OPEN):
            return False
        calls, repeated, _ = _complete_calls(self.text, lambda: "")
        self.done = repeated or (self.max_calls is not None and len(calls) >= self.max_calls)
        return self.done


def _skip_ws(text: str, pos: int) -> int:
    while pos < len(text) and text[pos] in " \t\r\n":
        pos += 1
    return pos


def _call_from(obj: Any, id_factory: IdFactory) -> ToolCall | None:
    if not isinstance(obj, dict) or not isinstance(obj.get("name"), str):
        return None
    args = obj.get("arguments", {})
    if isinstance(args, str):
        try:
            args = json.loads(args)
        except ValueError:
            return None
    return ToolCall(id_factory(), obj["name"], json.dumps(args, ensure_ascii=False))


class ToolCallStream:
    """Incremental :func:`parse_answer`: ``feed`` text pieces, get OpenAI stream deltas back.

    A call whose function was called before is held back until it is complete: a repeat of an
    earlier call is then dropped (and the stream is :attr:`done`), another call released."""

    def __init__(self, *, id_factory: IdFactory = new_call_id, max_calls: int | None = None) -> None:
        self._new_id = id_factory
        self._max_calls = max_calls
        self._state = "start"
        self._buf = ""
        self._calls: list[ToolCall] = []
        self._current: tuple[str, str] | None = None
        self._args: list[str] = []
        self._depth = 0
        self._in_string = False
        self._escaped = False
        self._held: list[StreamDelta] | None = None
        """The deltas of a call held back (its function was called before), while it is written."""
        self.done = False
        """True once the answer should end: a call repeated an earlier one, or the calls allowed
        are made. Later text is ignored."""

    @property
    def tool_calls(self) -> tuple[ToolCall, ...]:
        """The calls completed so far."""
        return tuple(self._calls)

    @property
    def is_tool_answer(self) -> bool:
        """Whether the answer turned out to be tool calls (finish_reason ``tool_calls``)."""
        return self._state not in ("start", "text")

    def feed(self, text: str) -> list[StreamDelta]:
        if self.done:
            return []
        self._buf += text
        out: list[StreamDelta] = []
        while not self.done and self._step(out):
            pass
        return out

    def finish(self) -> list[StreamDelta]:
        """Flush at the end of generation: text held back while it might open a call (unless it
        is the start of the opening tag: markup never becomes content); a call cut short and
        held back is dropped."""
        out: list[StreamDelta] = []
        if self._state == "start" and self._buf and not CALL_OPEN.startswith(self._buf.lstrip()):
            out.append(ContentDelta(self._buf))
        elif self._state == "head" and CALL_CLOSE in self._buf and not self.done:
            self._fallback(out)
        self._buf = ""
        self._held = None
        return out

    def _emit(self, out: list[StreamDelta], delta: StreamDelta) -> None:
        if self._held is not None:
            self._held.append(delta)
        else:
            out.append(delta)

    # Each _step consumes what it can and returns whether another step may make progress.
    def _step(self, out: list[StreamDelta]) -> bool:
        if self._state == "text":
            if self._buf:
                out.append(ContentDelta(self._buf))
                self._buf = ""
            return False
        if self._state in ("start", "between"):
            return self._await_open(out)
        if self._state == "head":
            return self._read_head(out)
        if self._state == "args":
            return self._read_args(out)
        return self._await_close(out)

    def _await_open(self, out: list[StreamDelta]) -> bool:
        stripped = self._buf.lstrip()
        if stripped.startswith(CALL_OPEN):
            self._buf = stripped[len(CALL_OPEN) :]
            self._state = "head"
            return True
        if CALL_OPEN.startswith(stripped):
            return False
        if self._state == "start":
            self._state = "text"
            return True
        self._buf = ""
        return False

    def _read_head(self, out: list[StreamDelta]) -> bool:
        match = _HEAD.match(self._buf)
        if match is None:
            if CALL_CLOSE in self._buf:
                self._fallback(out)
                return True
            return False
        name = json.loads(f'"{match.group(1)}"')
        call_id = self._new_id()
        self._current = (call_id, name)
        self._held = [] if any(c.name == name for c in self._calls) else None
        self._emit(out, ToolCallDelta(len(self._calls), "", id=call_id, name=name))
        self._buf = self._buf[match.end() :]
        self._state = "args"
        self._args, self._depth, self._in_string, self._escaped = [], 0, False, False
        return True

    def _read_args(self, out: list[StreamDelta]) -> bool:
        taken = 0
        done = False
        for ch in self._buf:
            taken += 1
            if self._in_string:
                if self._escaped:
                    self._escaped = False
                elif ch == "\\":
                    self._escaped = True
                elif ch == '"':
                    self._in_string = False
            elif ch == '"':
                self._in_string = True
            elif ch in "{[":
                self._depth += 1
            elif ch in "}]":
                self._depth -= 1
                if self._depth == 0:
                    done = True
                    break
        piece, self._buf = self._buf[:taken], self._buf[taken:]
        if piece:
            self._args.append(piece)
            self._emit(out, ToolCallDelta(len(self._calls), piece))
        if done:
            self._state = "tail"
        return done

    def _await_close(self, out: list[StreamDelta]) -> bool:
        end = self._buf.find(CALL_CLOSE)
        if end < 0:
            return False
        if self._current is not None:
            call_id, name = self._current
            self._current = None
            self._complete(out, ToolCall(call_id, name, _compact("".join(self._args))), self._held)
        self._held = None
        self._buf = self._buf[end + len(CALL_CLOSE) :]
        self._state = "between"
        return True

    def _complete(self, out: list[StreamDelta], call: ToolCall, held: list[StreamDelta] | None) -> None:
        """A call is complete: keep it (releasing its held deltas), or drop a repeat and stop."""
        if any((c.name, c.arguments) == (call.name, call.arguments) for c in self._calls):
            self.done = True
            return
        self._calls.append(call)
        out.extend(held or ())
        if self._max_calls is not None and len(self._calls) >= self._max_calls:
            self.done = True

    def _fallback(self, out: list[StreamDelta]) -> None:
        """A block whose head did not match the usual key order: parse it whole."""
        end = self._buf.find(CALL_CLOSE)
        block, self._buf = self._buf[:end], self._buf[end + len(CALL_CLOSE) :]
        self._state = "between"
        try:
            call = _call_from(json.loads(block), self._new_id)
        except ValueError:
            call = None
        if call is None:
            log.debug("dropping an unparsable tool call block of %d characters", len(block))
            return
        whole = ToolCallDelta(len(self._calls), call.arguments, id=call.id, name=call.name)
        self._complete(out, call, [whole])


def _compact(arguments: str) -> str:
    try:
        return json.dumps(json.loads(arguments), ensure_ascii=False)
    except ValueError:
        return arguments
