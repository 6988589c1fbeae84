"""Server-sent events of a streamed completion, the common chunk built from prebuilt JSON.

A stream sends one event per new token of each choice. Building each through the pydantic
schema (``ChatCompletionChunk(...).model_dump()`` then ``json.dumps``) costs more than
everything else the server does per token; yet all but one field of those events are the same
for the whole stream. :class:`ChatChunks` and :class:`CompletionChunks` build the fixed parts
once, so a token's event costs one ``json.dumps`` of its text. They produce the very bytes the
schema path does (``tests/server/test_chunks.py`` holds them to it); every other event (the
first, logprobs, tool calls, the last, usage) still goes through the schemas.
"""

from __future__ import annotations

import json

from llmos.server.schemas.chat import ChatCompletionChunk, ChunkChoice, Delta
from llmos.server.schemas.completions import Completion, CompletionChoice


def _dumps(value: object) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def _split(template: str, marker: str) -> tuple[str, str]:
    head, sep, tail = template.partition(marker)
    if not sep:  # pragma: no cover - the schema changed shape
        raise RuntimeError(f"chunk template lost its marker {marker!r}")
    return head, tail


_INDEX = 987654321
_TEXT = "\x00llmos-text\x00"


class ChatChunks:
    """The content-delta events of one streamed chat completion."""

    def __init__(self, chat_id: str, created: int, model: str, *, include_usage: bool) -> None:
        payload = ChatCompletionChunk(
            id=chat_id,
            created=created,
            model=model,
            choices=[ChunkChoice(index=_INDEX, delta=Delta(content=_TEXT))],
        ).model_dump(mode="json")
        if not include_usage:
            del payload["usage"]
        del payload["citations"]
        template = f"data: {_dumps(payload)}\n\n"
        self._head, rest = _split(template, str(_INDEX))
        self._middle, self._tail = _split(rest, _dumps(_TEXT))

    def content(self, index: int, text: str) -> bytes:
        """The event carrying ``text`` as choice ``index``'s new content."""
        return f"{self._head}{index}{self._middle}{_dumps(text)}{self._tail}".encode()


class CompletionChunks:
    """The text events of one streamed (legacy) text completion."""

    def __init__(self, cmpl_id: str, created: int, model: str, *, include_usage: bool) -> None:
        choice = CompletionChoice(index=_INDEX, text=_TEXT, finish_reason=None)
        payload = Completion(id=cmpl_id, created=created, model=model, choices=[choice]).model_dump(
            mode="json"
        )
        if not include_usage:
            del payload["usage"]
        template = f"data: {_dumps(payload)}\n\n"
        self._head, rest = _split(template, str(_INDEX))
        self._middle, self._tail = _split(rest, _dumps(_TEXT))

    def text(self, index: int, text: str) -> bytes:
        """The event carrying ``text`` as choice ``index``'s new text (no logprobs, not the last)."""
        return f"{self._head}{index}{self._middle}{_dumps(text)}{self._tail}".encode()
