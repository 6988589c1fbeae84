"""Our grammars through llama.cpp's own grammar parser and sampler (vocabulary only, no weights)."""

from __future__ import annotations

from typing import Any

import pytest

from llmos.structured import compile_json_schema, json_object_grammar, plan_chat

from .schemas import ADD_TOOL, EVENT, ORDER, PERSON, REVIEW, TREE, WEATHER_TOOL

pytestmark = pytest.mark.integration


@pytest.mark.parametrize(
    "schema", [PERSON, ORDER, REVIEW, TREE, EVENT, {}, {"type": "array"}, {"enum": [1, "a", None]}]
)
def test_llamacpp_parses_our_grammars(probe: Any, schema: dict[str, Any]) -> None:
    assert probe.parses(compile_json_schema(schema))
    assert probe.parses(compile_json_schema(schema, whitespace="pretty"))


def test_the_probe_notices_a_broken_grammar(probe: Any) -> None:
    assert not probe.parses("root ::= undefined-rule")


@pytest.mark.parametrize(
    ("schema", "text", "ok"),
    [
        (PERSON, '{"name": "Ann", "age": 41, "email": null}', True),
        (PERSON, '{"name":"Ann","age":41,"email":"a@b.c"}', True),
        (PERSON, '{"name": "Ann", "age": 121, "email": null}', False),
        (PERSON, '{"name": "Ann", "age": 41}', False),
        (PERSON, '{"age": 41, "name": "Ann", "email": null}', False),
        (PERSON, '{"name": "Ann", "age": 41, "email": null, "x": 1}', False),
        (PERSON, '{"name": "Ann",   "age": 41, "email": null}', False),
        (PERSON, '{\n"name": "Ann", "age": 41, "email": null}', False),
        (ORDER, '{"items": [{"sku": "ABC-123", "qty": 2}], "priority": "low"}', True),
        (ORDER, '{"items": [{"sku": "ABC-123", "qty": 2}], "priority": "low", "gift": true}', True),
        (ORDER, '{"items": [], "priority": "low"}', False),
        (ORDER, '{"items": [{"sku": "abc-123", "qty": 2}], "priority": "low"}', False),
        (ORDER, '{"items": [{"sku": "ABC-123", "qty": 0}], "priority": "low"}', False),
        (ORDER, '{"items": [{"sku": "ABC-123", "qty": 1}], "priority": "urgent"}', False),
        (REVIEW, '{"title": "ok", "score": 5, "pros": [], "verdict": null, "confidence": 0.75}', True),
        (REVIEW, '{"title": "ok", "score": 5, "pros": [], "verdict": "skip", "confidence": 1.0}', True),
        (REVIEW, '{"title": "", "score": 5, "pros": [], "verdict": null, "confidence": 0.5}', False),
        (REVIEW, '{"title": "ok", "score": 6, "pros": [], "verdict": null, "confidence": 0.5}', False),
        (REVIEW, '{"title": "ok", "score": 5, "pros": [], "verdict": null, "confidence": 1.5}', False),
        (TREE, '{"label": "a", "children": [{"label": "b", "children": []}]}', True),
        (TREE, '{"label": "a", "children": [{"label": "b"}]}', False),
        (
            EVENT,
            '{"id": "123e4567-e89b-12d3-a456-426614174000", "day": "2024-02-29", "kind": "meeting"}',
            True,
        ),
        (EVENT, '{"id": "x", "day": "2024-02-29", "kind": "meeting"}', False),
        (
            EVENT,
            '{"id": "123e4567-e89b-12d3-a456-426614174000", "day": "2024-13-01", "kind": "meeting"}',
            False,
        ),
        (
            EVENT,
            '{"id": "123e4567-e89b-12d3-a456-426614174000", "day": "2024-01-01", '
            '"at": "2024-01-01T10:00:00Z", "kind": "meeting", "tags": {"a": 1}, "note": null}',
            True,
        ),
    ],
)
def test_llamacpp_accepts_exactly_the_valid_documents(
    probe: Any, schema: dict[str, Any], text: str, ok: bool
) -> None:
    assert probe.accepts(compile_json_schema(schema), text) is ok


def test_json_object_mode_accepts_objects_only(probe: Any) -> None:
    gbnf = json_object_grammar()
    assert probe.accepts(gbnf, '{"a": [1, 2.5e3, {"b": null}], "c": "\\u00e9\\n"}')
    assert not probe.accepts(gbnf, "[1, 2]")
    assert not probe.accepts(gbnf, '{"a": 1} trailing')


def _tool_plan(choice: Any, parallel: bool = True) -> str:
    plan = plan_chat(
        [{"role": "user", "content": "x"}],
        tools=[WEATHER_TOOL, ADD_TOOL],
        tool_choice=choice,
        parallel_tool_calls=parallel,
    )
    assert plan.grammar is not None
    return plan.grammar


CALL_ADD = '<tool_call>{"name": "add", "arguments": {"a": 2, "b": 3}}</tool_call>'
CALL_WEATHER = (
    '<tool_call>{"name": "get_weather", "arguments": {"city": "Oslo", "unit": "celsius"}}</tool_call>'
)
BAD_ARGS = '<tool_call>{"name": "add", "arguments": {"a": 2}}</tool_call>'


@pytest.mark.parametrize(
    ("choice", "parallel", "text", "ok"),
    [
        ("required", True, CALL_ADD, True),
        ("required", True, CALL_WEATHER + "\n" + CALL_ADD, True),
        ("required", False, CALL_WEATHER + "\n" + CALL_ADD, False),
        ("required", True, BAD_ARGS, False),
        ("required", True, "Sure, 5.", False),
        ({"type": "function", "function": {"name": "add"}}, True, CALL_ADD, True),
        ({"type": "function", "function": {"name": "add"}}, True, CALL_WEATHER, False),
        ({"type": "function", "function": {"name": "add"}}, True, CALL_ADD + "\n" + CALL_ADD, False),
        ("auto", True, "Sure, 5.", True),
        ("auto", True, CALL_ADD, True),
        ("auto", True, BAD_ARGS, False),
        ("auto", True, "<tool_call>oops", False),
    ],
)
def test_tool_grammars_in_llamacpp(probe: Any, choice: Any, parallel: bool, text: str, ok: bool) -> None:
    assert probe.accepts(_tool_plan(choice, parallel), text) is ok


def test_pretty_whitespace_allows_one_newline_and_a_bounded_indent(probe: Any) -> None:
    gbnf = compile_json_schema(PERSON, whitespace="pretty")
    assert probe.accepts(gbnf, '{\n  "name": "Ann",\n  "age": 41,\n  "email": null\n}')
    assert not probe.accepts(gbnf, '{\n\n  "name": "Ann", "age": 41, "email": null}')
    assert not probe.accepts(gbnf, "{\n" + " " * 17 + '"name": "Ann", "age": 41, "email": null}')


def test_auto_with_json_object_offers_calls_or_an_object(probe: Any) -> None:
    plan = plan_chat(
        [{"role": "user", "content": "x"}], tools=[ADD_TOOL], response_format={"type": "json_object"}
    )
    assert plan.grammar is not None
    assert probe.accepts(plan.grammar, CALL_ADD)
    assert probe.accepts(plan.grammar, '{"sum": 5}')
    assert not probe.accepts(plan.grammar, "five")
