"""The prebuilt token events are byte for byte what the schemas would send."""

from __future__ import annotations

import json

import pytest

from llmos.server.chunks import ChatChunks, CompletionChunks
from llmos.server.schemas.chat import ChatCompletionChunk, ChunkChoice, Delta
from llmos.server.schemas.completions import Completion, CompletionChoice
from llmos.server.sse import sse_event

TEXTS = [
    "a",
    " the",
    "",
    'quote " and \\ backslash',
    "line\nbreak\ttab",
    "ünïcødé ✓ 😀",
    "\x00\x1f ctrl",
    "</s>",
]


def _chat_by_schema(index: int, text: str, include_usage: bool) -> bytes:
    c = ChatCompletionChunk(
        id='chatcmpl-x"y',
        created=123,
        model="m:1",
        choices=[ChunkChoice(index=index, delta=Delta(content=text))],
    )
    payload = c.model_dump(mode="json")
    if not include_usage:
        del payload["usage"]
    del payload["citations"]
    return sse_event(payload)


def _completion_by_schema(index: int, text: str, include_usage: bool) -> bytes:
    choice = CompletionChoice(index=index, text=text, finish_reason=None)
    payload = Completion(id="cmpl-x", created=123, model="m:1", choices=[choice]).model_dump(mode="json")
    if not include_usage:
        del payload["usage"]
    return sse_event(payload)


@pytest.mark.parametrize("include_usage", [False, True])
def test_chat_token_events_match_the_schema(include_usage: bool) -> None:
    fast = ChatChunks('chatcmpl-x"y', 123, "m:1", include_usage=include_usage)
    for index in (0, 3, 12):
        for text in TEXTS:
            event = fast.content(index, text)
            assert event == _chat_by_schema(index, text, include_usage)
            assert json.loads(event.decode()[len("data: ") :])["choices"][0]["delta"]["content"] == text


@pytest.mark.parametrize("include_usage", [False, True])
def test_completion_token_events_match_the_schema(include_usage: bool) -> None:
    fast = CompletionChunks("cmpl-x", 123, "m:1", include_usage=include_usage)
    for index in (0, 7):
        for text in TEXTS:
            assert fast.text(index, text) == _completion_by_schema(index, text, include_usage)
