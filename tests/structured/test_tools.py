"""Tool calling without a model: request validation, prompting, history, parsing and streaming."""

from __future__ import annotations

import itertools
import json
from typing import Any

import pytest

from llmos.errors import InvalidRequest
from llmos.structured import (
    ContentDelta,
    ParsedAnswer,
    ToolCallDelta,
    ToolCallStream,
    parse_answer,
    parse_tool_choice,
    parse_tools,
    plan_chat,
    render_tool_history,
)
from llmos.structured.tool_parser import CallWatcher, ToolCall

WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather in a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}, "unit": {"enum": ["c", "f"]}},
            "required": ["city"],
        },
    },
}
ADD = {
    "type": "function",
    "function": {
        "name": "add",
        "parameters": {
            "type": "object",
            "properties": {"a": {"type": "number"}, "b": {"type": "number"}},
            "required": ["a", "b"],
            "additionalProperties": False,
        },
    },
}


def _ids() -> Any:
    counter = itertools.count()
    return lambda: f"call_{next(counter)}"


@pytest.mark.parametrize(
    ("tools", "needle"),
    [
        ([{"type": "retrieval"}], "type 'function'"),
        ([{"type": "function"}], "function is required"),
        ([{"type": "function", "function": {"name": "bad name"}}], "must match"),
        ([ADD, ADD], "duplicate"),
        ([{"type": "function", "function": {"name": "f", "parameters": []}}], "parameters"),
    ],
)
def test_bad_tools_are_refused(tools: list[Any], needle: str) -> None:
    with pytest.raises(InvalidRequest, match=needle) as info:
        parse_tools(tools)
    assert info.value.param == "tools"


def test_tool_choice_defaults_and_errors() -> None:
    fns = parse_tools([WEATHER])
    assert parse_tool_choice(None, fns).mode == "auto"
    assert parse_tool_choice(None, ()).mode == "none"
    named = parse_tool_choice({"type": "function", "function": {"name": "get_weather"}}, fns)
    assert (named.mode, named.name) == ("function", "get_weather")
    with pytest.raises(InvalidRequest, match="unknown function") as info:
        parse_tool_choice({"type": "function", "function": {"name": "nope"}}, fns)
    assert info.value.param == "tool_choice"
    with pytest.raises(InvalidRequest):
        parse_tool_choice("required", ())
    with pytest.raises(InvalidRequest):
        parse_tool_choice("sometimes", fns)


def test_unsupported_parameter_schema_is_a_tools_error() -> None:
    bad = {"type": "function", "function": {"name": "f", "parameters": {"type": "object", "not": {}}}}
    with pytest.raises(InvalidRequest, match="'not'") as info:
        plan_chat([{"role": "user", "content": "x"}], tools=[bad], tool_choice="required")
    assert info.value.param == "tools"
    assert "tools[0].function.parameters" in info.value.message


def test_history_with_tool_calls_and_results_becomes_plain_messages() -> None:
    history = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Weather in Paris and 2+3?"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_a",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
                },
                {
                    "id": "call_b",
                    "type": "function",
                    "function": {"name": "add", "arguments": '{"a": 2, "b": 3}'},
                },
            ],
        },
        {"role": "tool", "tool_call_id": "call_a", "content": "18C, sunny"},
        {"role": "tool", "tool_call_id": "call_b", "content": "5"},
    ]
    out = render_tool_history(history)
    assert [m["role"] for m in out] == ["system", "user", "assistant", "user"]
    assert out[2]["content"].count("<tool_call>") == 2
    assert parse_answer(out[2]["content"]).tool_calls[1].name == "add"
    results = out[3]["content"].split("\n")
    assert [
        json.loads(r.removeprefix("<tool_response>").removesuffix("</tool_response>")) for r in results
    ] == [
        {"name": "get_weather", "content": "18C, sunny"},
        {"name": "add", "content": "5"},
    ]
    assert all(set(m) <= {"role", "content"} for m in out)


def test_malformed_history_is_refused() -> None:
    with pytest.raises(InvalidRequest, match="tool_call_id"):
        render_tool_history([{"role": "tool", "content": "x"}])
    with pytest.raises(InvalidRequest, match="not valid JSON"):
        render_tool_history(
            [
                {
                    "role": "assistant",
                    "tool_calls": [{"id": "1", "function": {"name": "f", "arguments": "{oops"}}],
                }
            ]
        )


def test_plan_injects_instructions_into_the_system_message() -> None:
    plan = plan_chat(
        [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hi"}],
        tools=[WEATHER, ADD],
        tool_choice="required",
    )
    system = plan.messages[0]["content"]
    assert system.startswith("Be brief.") and '"name": "get_weather"' in system and "must call" in system
    assert plan.grammar is not None and plan.grammar.startswith("root ::= tool-call")
    assert len(plan.messages) == 2


def test_plan_without_tools_or_format_changes_nothing() -> None:
    msgs = [{"role": "user", "content": "hi"}]
    plan = plan_chat(msgs)
    assert plan.grammar is None and plan.messages == msgs and plan.stream() is None
    assert plan.parse("<tool_call>{}").content == "<tool_call>{}"
    none = plan_chat(msgs, tools=[ADD], tool_choice="none")
    assert none.grammar is None and none.messages == msgs


def test_plan_json_modes() -> None:
    msgs = [{"role": "user", "content": "hi"}]
    obj = plan_chat(msgs, response_format={"type": "json_object"})
    assert obj.grammar is not None and obj.grammar.startswith("root ::= object")
    schema = {"type": "object", "properties": {"x": {"type": "integer"}}, "required": ["x"]}
    plan = plan_chat(
        msgs, response_format={"type": "json_schema", "json_schema": {"name": "s", "schema": schema}}
    )
    assert plan.problems(plan.parse('{"x": 3}')) == []
    assert plan.problems(plan.parse('{"x": "3"}'))
    assert plan.problems(plan.parse("{nope"))
    with pytest.raises(InvalidRequest) as info:
        plan_chat(msgs, response_format={"type": "yaml"})
    assert info.value.param == "response_format"


def test_auto_with_a_response_format_offers_calls_or_that_json() -> None:
    schema = {"type": "object", "properties": {"answer": {"type": "string"}}, "required": ["answer"]}
    plan = plan_chat(
        [{"role": "user", "content": "hi"}],
        tools=[ADD],
        response_format={"type": "json_schema", "json_schema": {"name": "s", "schema": schema}},
    )
    assert plan.grammar is not None
    root = plan.grammar.splitlines()[0]
    assert root.startswith("root ::= tool-calls | ")


def test_parse_answer_text_and_calls() -> None:
    assert parse_answer("Hello!").content == "Hello!"
    answer = parse_answer(
        '<tool_call>{"name": "add", "arguments": {"a": 1, "b": 2}}</tool_call>\n'
        '<tool_call>{"name": "get_weather", "arguments": "{\\"city\\": \\"Oslo\\"}"}</tool_call>',
        id_factory=_ids(),
    )
    assert answer.content is None
    assert answer.tool_calls == (
        ToolCall("call_0", "add", '{"a": 1, "b": 2}'),
        ToolCall("call_1", "get_weather", '{"city": "Oslo"}'),
    )  # their OpenAI shape: tests/server/test_answer_shapes.py
    assert parse_answer("hi") == ParsedAnswer("hi")
    truncated = '<tool_call>{"name": "add", "arguments": {"a": 1'
    assert parse_answer(truncated) == ParsedAnswer(None)  # the markup never becomes content
    assert parse_answer("<tool_ca") == ParsedAnswer(None)
    assert parse_answer("<b>bold</b>").content == "<b>bold</b>"


ADD_1 = '<tool_call>{"name": "add", "arguments": {"a": 1, "b": 2}}</tool_call>'
ADD_2 = '<tool_call>{"name": "add", "arguments": {"a": 5, "b": 6}}</tool_call>'


def test_an_answer_cut_short_keeps_its_complete_calls() -> None:
    # What smollm2 wrote for tool_choice "required" and max_tokens 100: calls, then one cut.
    cut = ADD_1 + "\n" + ADD_2 + '\n<tool_call>{"name": "add", "argu'
    answer = parse_answer(cut, id_factory=_ids())
    assert answer.content is None
    assert [(c.id, c.arguments) for c in answer.tool_calls] == [
        ("call_0", '{"a": 1, "b": 2}'),
        ("call_1", '{"a": 5, "b": 6}'),
    ]
    unclosed = ADD_1 + '<tool_call>{"name": "add", "arguments": {}}'
    assert len(parse_answer(unclosed).tool_calls) == 1


def test_a_repeated_call_is_dropped_and_stops_the_answer() -> None:
    answer = parse_answer(ADD_1 + ADD_1 + "\n" + ADD_2 + ADD_1, id_factory=_ids())
    assert [c.arguments for c in answer.tool_calls] == ['{"a": 1, "b": 2}', '{"a": 5, "b": 6}']
    watcher = CallWatcher()
    assert not watcher.feed(ADD_1[:20]) and not watcher.feed(ADD_1[20:])
    assert not watcher.feed("\n" + ADD_2)
    assert not watcher.feed(ADD_1[:-3])  # not complete yet
    assert watcher.feed(ADD_1[-3:]) and watcher.done
    text = CallWatcher()
    assert not text.feed("Plain text that mentions </tool_call> stays text.")
    one = CallWatcher(max_calls=1)
    assert one.feed(ADD_2)


def test_default_ids_look_like_openai_ids() -> None:
    call = parse_answer('<tool_call>{"name": "f", "arguments": {}}</tool_call>').tool_calls[0]
    assert call.id.startswith("call_") and len(call.id) == 29


def test_parallel_false_keeps_one_call() -> None:
    plan = plan_chat([{"role": "user", "content": "x"}], tools=[ADD], parallel_tool_calls=False)
    text = '<tool_call>{"name": "add", "arguments": {"a": 1, "b": 2}}</tool_call>' * 2
    assert len(plan.parse(text).tool_calls) == 1
    assert plan.finish_reason(plan.parse(text), "stop") == "tool_calls"
    assert plan.finish_reason(plan.parse("hi"), "stop") == "stop"
    assert plan.grammar is not None and "{0,7}" not in plan.grammar


def _stream(text: str, size: int) -> tuple[list[Any], ToolCallStream]:
    stream = ToolCallStream(id_factory=_ids())
    deltas: list[Any] = []
    for i in range(0, len(text), size):
        deltas += stream.feed(text[i : i + size])
    deltas += stream.finish()
    return deltas, stream


def _merge(deltas: list[Any]) -> tuple[str, list[dict[str, str]]]:
    """What an OpenAI client assembles from the deltas."""
    content = ""
    calls: list[dict[str, str]] = []
    for d in deltas:
        if isinstance(d, ContentDelta):
            content += d.text
            continue
        assert isinstance(d, ToolCallDelta)
        if d.id is not None:
            assert d.index == len(calls) and d.name is not None
            calls.append({"id": d.id, "name": d.name, "arguments": ""})
        calls[d.index]["arguments"] += d.arguments
    return content, calls


CALLS_TEXT = (
    ' <tool_call>{"name": "get_weather", "arguments": {"city": "S\\"ao {Paulo}", "unit": "c"}}</tool_call>\n'
    '<tool_call>{"name": "add", "arguments": {"a": [1, {"b": 2}], "b": 3}}</tool_call>'
)


@pytest.mark.parametrize("size", [1, 2, 3, 7, 1000])
def test_stream_of_calls_matches_the_whole_answer(size: int) -> None:
    deltas, stream = _stream(CALLS_TEXT, size)
    content, calls = _merge(deltas)
    assert content == ""
    whole = parse_answer(CALLS_TEXT, id_factory=_ids()).tool_calls
    assert [c["name"] for c in calls] == [c.name for c in whole]
    assert [json.loads(c["arguments"]) for c in calls] == [json.loads(c.arguments) for c in whole]
    assert [c["id"] for c in calls] == ["call_0", "call_1"]
    assert stream.is_tool_answer and [c.arguments for c in stream.tool_calls] == [c.arguments for c in whole]
    first = next(d for d in deltas if isinstance(d, ToolCallDelta))
    assert first == ToolCallDelta(index=0, arguments="", id="call_0", name="get_weather")
    if size < 10:  # arguments arrive in several fragments, not at the end in one piece
        assert sum(1 for d in deltas if isinstance(d, ToolCallDelta) and d.index == 0) > 3


@pytest.mark.parametrize("size", [1, 4, 1000])
def test_stream_of_text_passes_through(size: int) -> None:
    for text in ["Hello, world", "<b>bold</b> move", ""]:
        deltas, stream = _stream(text, size)
        content, calls = _merge(deltas)
        assert content == text and calls == [] and not stream.is_tool_answer
    deltas, _ = _stream("  <tool", size)  # the start of a call's markup, cut: not content
    assert _merge(deltas) == ("", [])


@pytest.mark.parametrize("size", [1, 3, 1000])
def test_stream_drops_a_repeated_call_and_is_done(size: int) -> None:
    text = ADD_1 + "\n" + ADD_2 + "\n" + ADD_1 + "\n" + '<tool_call>{"name": "get_weather", "arguments": {}}'
    deltas, stream = _stream(text, size)
    _, calls = _merge(deltas)
    assert [json.loads(c["arguments"]) for c in calls] == [{"a": 1, "b": 2}, {"a": 5, "b": 6}]
    assert stream.done and len(stream.tool_calls) == 2


@pytest.mark.parametrize("size", [1, 1000])
def test_stream_with_one_call_allowed_is_done_after_it(size: int) -> None:
    stream = ToolCallStream(id_factory=_ids(), max_calls=1)
    deltas: list[Any] = []
    text = ADD_1 + ADD_2
    for i in range(0, len(text), size):
        deltas += stream.feed(text[i : i + size])
        if stream.done:
            break
    deltas += stream.finish()
    _, calls = _merge(deltas)
    assert [json.loads(c["arguments"]) for c in calls] == [{"a": 1, "b": 2}] and stream.done


def test_stream_handles_other_key_order_at_the_close_tag() -> None:
    text = '<tool_call>{"arguments": {"a": 1}, "name": "add"}</tool_call>'
    deltas, stream = _stream(text, 5)
    assert stream.is_tool_answer
    _, calls = _merge(deltas)
    assert calls == [{"id": "call_0", "name": "add", "arguments": '{"a": 1}'}]
