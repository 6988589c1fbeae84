"""The pipeline over a scripted ``generate`` (and ``measure``): no model, no kernel."""

from __future__ import annotations

import json
from typing import Any

import pytest

from llmos.errors import EngineGenerateError, InvalidRequest, NotFound
from llmos.structured import validate
from llmos.tasks import GenerateCall, Generated, PromptSize, TaskRequest, run_task


class Script:
    """Answers every call with ``answer``; records the calls."""

    def __init__(self, answer: Any, finish_reason: str = "stop") -> None:
        self.answer = answer
        self.finish_reason = finish_reason
        self.calls: list[GenerateCall] = []

    async def __call__(self, call: GenerateCall) -> Generated:
        self.calls.append(call)
        text = self.answer if isinstance(self.answer, str) else json.dumps(self.answer)
        return Generated(text, self.finish_reason, prompt_tokens=10, completion_tokens=5)


def request(text: str = "The battery died after one day.", **kw: Any) -> TaskRequest:
    return TaskRequest(model="m:1", text=text, **kw)


@pytest.mark.anyio
async def test_classify_constrains_to_the_labels_and_returns_valid_json() -> None:
    gen = Script({"label": "hardware"})
    result = await run_task("classify", request(params={"labels": ["billing", "hardware"]}), generate=gen)
    assert result.output == {"label": "hardware"}
    assert result.schema["properties"]["label"]["enum"] == ["billing", "hardware"]
    assert validate(result.output, result.schema) == []
    call = gen.calls[0]
    assert call.schema == result.schema and call.temperature == 0.0
    assert call.messages[-1] == {"role": "user", "content": "The battery died after one day."}
    assert "billing, hardware" in str(call.messages[0]["content"])


@pytest.mark.anyio
async def test_multi_label_classification_orders_and_dedupes() -> None:
    gen = Script({"labels": ["b", "a", "b"]})
    result = await run_task(
        "classify", request(params={"labels": ["a", "b", "c"], "multi_label": True}), generate=gen
    )
    assert result.output == {"labels": ["a", "b"]}


@pytest.mark.anyio
async def test_summary_is_tidied_and_limited_to_max_words() -> None:
    words = " ".join(f"w{i}" for i in range(30))
    gen = Script({"summary": f'  "{words}"  '})
    result = await run_task("summarize", request(params={"max_words": 20}), generate=gen)
    assert result.output["summary"].split(" ")[:19] == [f"w{i}" for i in range(19)]
    assert result.output["summary"].endswith("w19…") and len(result.output["summary"].split(" ")) == 20
    assert gen.calls[0].schema["properties"]["summary"]["maxLength"] == 180


@pytest.mark.anyio
async def test_translate_reports_the_target_language() -> None:
    gen = Script({"translation": "La batterie est morte."})
    result = await run_task("translate", request(params={"target_language": "French"}), generate=gen)
    assert result.output == {"translation": "La batterie est morte."}
    assert "French" in str(gen.calls[0].messages[0]["content"])


@pytest.mark.anyio
async def test_entities_not_in_the_text_are_dropped_and_duplicates_merged() -> None:
    gen = Script(
        {
            "entities": [
                {"text": "Alice", "type": "person"},
                {"text": "alice", "type": "person"},
                {"text": "Atlantis", "type": "location"},
                {"text": "ACME Corp", "type": "organization"},
            ]
        }
    )
    result = await run_task("extract_entities", request("Alice joined ACME Corp in May."), generate=gen)
    assert result.output == {
        "entities": [{"text": "Alice", "type": "person"}, {"text": "ACME Corp", "type": "organization"}]
    }


@pytest.mark.anyio
async def test_html_input_is_stripped_and_truncation_reported() -> None:
    gen = Script({"sentiment": "negative"})
    result = await run_task(
        "sentiment",
        request("<p>" + "bad " * 100 + "</p>", max_input_chars=50),
        generate=gen,
    )
    assert result.input.html_stripped and result.input.truncated
    assert result.input.truncated_for == "max_input_chars" and result.input.chars <= 50
    assert "<p>" not in str(gen.calls[0].messages[-1]["content"])


@pytest.mark.anyio
async def test_context_overflow_truncates_the_input_to_fit() -> None:
    """``measure`` counts one token per character: the text is cut until prompt + answer fit."""
    gen = Script({"sentiment": "neutral"})

    async def measure(call: GenerateCall) -> PromptSize:
        chars = sum(len(str(m["content"])) for m in call.messages)
        return PromptSize(prompt_tokens=chars, context_tokens=400)

    result = await run_task("sentiment", request("word " * 400), generate=gen, measure=measure)
    assert result.input.truncated and result.input.truncated_for == "context"
    call = gen.calls[0]
    used = sum(len(str(m["content"])) for m in call.messages)
    assert used + call.max_tokens <= 400


@pytest.mark.anyio
async def test_unknown_task_is_not_found() -> None:
    with pytest.raises(NotFound, match="summarize"):
        await run_task("poetry", request(), generate=Script({}))


@pytest.mark.parametrize(
    ("task", "params", "param"),
    [
        ("classify", {}, "params.labels"),
        ("classify", {"labels": ["only"]}, "params.labels"),
        ("classify", {"labels": ["a", "A"]}, "params.labels"),
        ("classify", {"labels": ["a", ""]}, "params.labels"),
        ("classify", {"labels": "a,b"}, "params.labels"),
        ("translate", {}, "params.target_language"),
        ("translate", {"target_language": 3}, "params.target_language"),
        ("summarize", {"max_words": 0}, "params.max_words"),
        ("summarize", {"max_words": True}, "params.max_words"),
        ("sentiment", {"labels": ["x"]}, "params.labels"),
        ("extract_entities", {"max_entities": 99}, "params.max_entities"),
    ],
)
@pytest.mark.anyio
async def test_bad_params_are_invalid_requests(task: str, params: dict[str, Any], param: str) -> None:
    gen = Script({})
    with pytest.raises(InvalidRequest) as info:
        await run_task(task, request(params=params), generate=gen)
    assert info.value.param == param and not gen.calls


@pytest.mark.anyio
async def test_empty_input_after_cleaning_is_refused() -> None:
    with pytest.raises(InvalidRequest, match="no text"):
        await run_task("sentiment", request("<p> \n </p>"), generate=Script({}))


@pytest.mark.anyio
async def test_an_answer_cut_off_is_an_error_that_names_max_tokens() -> None:
    with pytest.raises(EngineGenerateError, match="cut off"):
        await run_task("sentiment", request(), generate=Script('{"sentiment": "pos', "length"))
    with pytest.raises(InvalidRequest) as info:
        await run_task("sentiment", request(max_tokens=3), generate=Script('{"sent', "length"))
    assert info.value.param == "max_tokens"


@pytest.mark.anyio
async def test_an_answer_off_schema_is_an_error() -> None:
    with pytest.raises(EngineGenerateError, match="schema"):
        await run_task("sentiment", request(), generate=Script({"sentiment": "ecstatic"}))
    with pytest.raises(EngineGenerateError, match="not JSON"):
        await run_task("sentiment", request(), generate=Script("Lorem ipsum"))
