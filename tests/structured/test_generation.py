"""The real proof: smollm2 (135M parameters) constrained by our grammars, over many seeds.

Every answer must parse as JSON and validate against its schema; a required tool call must
name a declared function with arguments valid against that function's parameters.
(The high-level ``llama_cpp.Llama`` runs the model here so the package is tested on its own;
the production path feeds the same grammar to our engine through ``SamplingParams.grammar``.)
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from llama_cpp import LlamaGrammar

from llmos.structured import ToolCallDelta, plan_chat, validate

from .schemas import ADD_TOOL, ORDER, PERSON, REVIEW, TREE, WEATHER_TOOL

pytestmark = pytest.mark.integration

SEEDS = range(10)
CASES = [
    ("person", PERSON, "Invent a person and give their name, age and email."),
    ("order", ORDER, "Order two products from the shop."),
    ("review", REVIEW, "Review the phone you bought last week."),
    ("tree", TREE, "Give a small tree of animal categories."),
]
FUNCTIONS = {t["function"]["name"]: t["function"]["parameters"] for t in (WEATHER_TOOL, ADD_TOOL)}


def _complete(llm: Any, plan: Any, seed: int, max_tokens: int = 512) -> tuple[str, str]:
    grammar = LlamaGrammar.from_string(plan.grammar, verbose=False)
    out = llm.create_chat_completion(
        plan.messages, grammar=grammar, seed=seed, max_tokens=max_tokens, temperature=0.8
    )
    choice = out["choices"][0]
    return choice["message"]["content"], choice["finish_reason"]


@pytest.mark.parametrize(("name", "schema", "prompt"), CASES, ids=[c[0] for c in CASES])
def test_every_seed_yields_schema_valid_json(
    smollm2: Any, name: str, schema: dict[str, Any], prompt: str
) -> None:
    fmt = {"type": "json_schema", "json_schema": {"name": name, "schema": schema, "strict": True}}
    plan = plan_chat([{"role": "user", "content": prompt}], response_format=fmt)
    for seed in SEEDS:
        text, finish = _complete(smollm2, plan, seed)
        assert finish == "stop", (seed, text)
        assert validate(json.loads(text), schema) == [], (seed, text)
        assert plan.problems(plan.parse(text)) == []


def test_json_object_mode_always_parses(smollm2: Any) -> None:
    plan = plan_chat(
        [{"role": "user", "content": "Describe your favourite city in JSON."}],
        response_format={"type": "json_object"},
    )
    for seed in range(5):
        text, finish = _complete(smollm2, plan, seed, max_tokens=400)
        assert finish == "stop", (seed, text)
        assert isinstance(json.loads(text), dict)


def _assert_valid_calls(answer: Any, allowed: set[str]) -> None:
    assert answer.content is None and answer.tool_calls
    for call in answer.tool_calls:
        assert call.name in allowed and call.id.startswith("call_")
        assert validate(json.loads(call.arguments), FUNCTIONS[call.name]) == [], call


@pytest.mark.parametrize(
    ("choice", "allowed"),
    [("required", {"get_weather", "add"}), ({"type": "function", "function": {"name": "add"}}, {"add"})],
    ids=["required", "named"],
)
def test_forced_tool_calls_have_schema_valid_arguments(smollm2: Any, choice: Any, allowed: set[str]) -> None:
    messages = [{"role": "user", "content": "What is the weather in Paris, and what is 12 plus 30?"}]
    plan = plan_chat(messages, tools=[WEATHER_TOOL, ADD_TOOL], tool_choice=choice)
    for seed in range(5):
        text, finish = _complete(smollm2, plan, seed, max_tokens=256)
        assert finish == "stop", (seed, text)
        answer = plan.parse(text)
        _assert_valid_calls(answer, allowed)
        assert plan.finish_reason(answer, finish) == "tool_calls"


def test_auto_answers_with_text_or_valid_calls(smollm2: Any) -> None:
    plan = plan_chat(
        [{"role": "user", "content": "What is the weather in Berlin?"}],
        tools=[WEATHER_TOOL, ADD_TOOL],
        tool_choice="auto",
    )
    kinds = set()
    for seed in range(3):
        text, _ = _complete(smollm2, plan, seed, max_tokens=160)
        answer = plan.parse(text)
        if answer.tool_calls:
            kinds.add("calls")
            _assert_valid_calls(answer, set(FUNCTIONS))
        else:
            kinds.add("text")
            assert answer.content == text and not text.lstrip().startswith("<")
    assert kinds


def test_streamed_tool_call_matches_the_whole_answer(smollm2: Any) -> None:
    plan = plan_chat(
        [{"role": "user", "content": "Add 7 and 35."}],
        tools=[ADD_TOOL],
        tool_choice={"type": "function", "function": {"name": "add"}},
        parallel_tool_calls=False,
    )
    grammar = LlamaGrammar.from_string(plan.grammar or "", verbose=False)
    stream = plan.stream()
    assert stream is not None
    pieces: list[str] = []
    deltas = []
    for chunk in smollm2.create_chat_completion(
        plan.messages, grammar=grammar, seed=3, max_tokens=128, temperature=0.8, stream=True
    ):
        piece = chunk["choices"][0]["delta"].get("content") or ""
        pieces.append(piece)
        deltas += stream.feed(piece)
    deltas += stream.finish()
    assert len(pieces) > 5
    calls = [d for d in deltas if isinstance(d, ToolCallDelta)]
    assert calls[0].name == "add" and calls[0].id is not None
    streamed_args = "".join(d.arguments for d in calls)
    whole = plan.parse("".join(pieces)).tool_calls
    assert len(whole) == 1 and json.loads(streamed_args) == json.loads(whole[0].arguments)
    assert validate(json.loads(streamed_args), FUNCTIONS["add"]) == []


def test_tool_result_in_history_is_rendered_and_answered(smollm2: Any) -> None:
    messages = [
        {"role": "user", "content": "What is the weather in Paris?"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city": "Paris", "unit": "celsius"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": '{"temperature": 21, "sky": "sunny"}'},
    ]
    plan = plan_chat(messages, tools=[WEATHER_TOOL], tool_choice="none")
    out = smollm2.create_chat_completion(plan.messages, seed=0, max_tokens=48, temperature=0.0)
    text = out["choices"][0]["message"]["content"]
    assert text.strip()
    assert any("<tool_response>" in m["content"] for m in plan.messages)
