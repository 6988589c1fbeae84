"""The OpenAI shapes of a read-back answer (the kernel's values → HTTP, in ``server/convert``)."""

from __future__ import annotations

from llmos.kernel.types import AnswerChoice
from llmos.server import convert
from llmos.structured import ContentDelta, ToolCallDelta
from llmos.structured.tool_parser import ToolCall


def test_an_answer_of_tool_calls_is_a_message_without_content() -> None:
    calls = (
        ToolCall("call_0", "add", '{"a": 1, "b": 2}'),
        ToolCall("call_1", "get_weather", '{"city": "Oslo"}'),
    )
    message = convert.assistant_message(AnswerChoice(0, "<tool_call>…", None, calls, "tool_calls"))
    assert message.model_dump() == {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {
                "id": "call_0",
                "type": "function",
                "function": {"name": "add", "arguments": '{"a": 1, "b": 2}'},
            },
            {
                "id": "call_1",
                "type": "function",
                "function": {"name": "get_weather", "arguments": '{"city": "Oslo"}'},
            },
        ],
    }
    text = convert.assistant_message(AnswerChoice(0, "hi", "hi", (), "stop"))
    assert text.model_dump(exclude_none=True) == {"role": "assistant", "content": "hi"}


def test_streamed_pieces_name_a_call_on_its_first_delta_only() -> None:
    first = convert.piece_delta(ToolCallDelta(index=0, arguments="", id="call_0", name="get_weather"))
    assert first.model_dump(exclude_none=True) == {
        "tool_calls": [
            {
                "index": 0,
                "id": "call_0",
                "type": "function",
                "function": {"name": "get_weather", "arguments": ""},
            }
        ]
    }
    more = convert.piece_delta(ToolCallDelta(index=0, arguments='{"city"'))
    assert more.model_dump(exclude_none=True) == {
        "tool_calls": [{"index": 0, "function": {"arguments": '{"city"'}}]
    }
    assert convert.piece_delta(ContentDelta("Hello")).model_dump(exclude_none=True) == {"content": "Hello"}
