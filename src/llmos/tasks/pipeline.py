"""Running a task: pre-process → fit the context → generate (schema-constrained) → validate →
post-process → validate again.

The pipeline knows nothing of the kernel: the caller injects ``generate`` (one schema-constrained
chat completion) and, optionally, ``measure`` (how many tokens a prompt takes and how many the
model's context holds), so dependencies point down and tests can script both.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from llmos.errors import EngineGenerateError, InvalidRequest
from llmos.structured.validation import validate
from llmos.tasks.definitions import JSONObject, TaskSpec, get_task
from llmos.tasks.text import InputFormat, PreparedText, prepare, truncate
from llmos.types import ChatMessage

DEFAULT_MAX_INPUT_CHARS = 8000
MAX_INPUT_CHARS = 200_000
_MARGIN_TOKENS = 8
_MIN_TEXT_TOKENS = 16
_FIT_ATTEMPTS = 4


@dataclass(frozen=True)
class TaskRequest:
    """One task call. ``params`` are the task's own (e.g. ``labels`` for classify)."""

    model: str
    text: str
    params: Mapping[str, Any] = field(default_factory=dict)
    input_format: InputFormat = "auto"
    max_input_chars: int | None = None
    max_tokens: int | None = None
    temperature: float = 0.0
    seed: int | None = None


@dataclass(frozen=True)
class GenerateCall:
    """One schema-constrained chat completion the pipeline asks for."""

    model: str
    messages: tuple[ChatMessage, ...]
    schema: JSONObject
    schema_name: str
    max_tokens: int
    temperature: float
    seed: int | None


@dataclass(frozen=True)
class Generated:
    text: str
    finish_reason: str
    prompt_tokens: int
    completion_tokens: int
    digest: str = ""
    """The digest of the model version that generated it, when known."""


@dataclass(frozen=True)
class PromptSize:
    prompt_tokens: int
    context_tokens: int
    """How many tokens one sequence of the model may hold (prompt plus output)."""


Generate = Callable[[GenerateCall], Awaitable[Generated]]
Measure = Callable[[GenerateCall], Awaitable[PromptSize | None]]
"""None: the size cannot be known now (the input is then sent as pre-processing left it)."""


@dataclass(frozen=True)
class InputReport:
    """What pre-processing did to the input."""

    original_chars: int
    chars: int
    html_stripped: bool
    truncated: bool
    truncated_for: str | None = None
    """Why it was cut: ``max_input_chars`` or ``context`` (the model's context was too small)."""


@dataclass(frozen=True)
class TaskResult:
    task: str
    model: str
    output: JSONObject
    """The post-processed answer; valid against :attr:`schema`."""
    schema: JSONObject
    input: InputReport
    prompt_tokens: int
    completion_tokens: int
    finish_reason: str
    digest: str = ""
    """The digest of the model version that answered ("" if the generator did not say)."""


def _call(name: str, request: TaskRequest, spec: TaskSpec, max_tokens: int) -> GenerateCall:
    return GenerateCall(
        model=request.model,
        messages=({"role": "system", "content": spec.system}, {"role": "user", "content": spec.user}),
        schema=spec.schema,
        schema_name=name,
        max_tokens=max_tokens,
        temperature=request.temperature,
        seed=request.seed,
    )


async def run_task(
    name: str, request: TaskRequest, *, generate: Generate, measure: Measure | None = None
) -> TaskResult:
    """Run task ``name``. Raises NotFound (no such task), InvalidRequest (bad params or input),
    EngineGenerateError (the answer did not close or match the schema) and whatever ``generate``
    raises."""
    task = get_task(name)
    limit = DEFAULT_MAX_INPUT_CHARS if request.max_input_chars is None else request.max_input_chars
    if not 1 <= limit <= MAX_INPUT_CHARS:
        raise InvalidRequest(
            f"max_input_chars must be between 1 and {MAX_INPUT_CHARS}", param="max_input_chars"
        )
    prepared = prepare(request.text, input_format=request.input_format, max_chars=limit)
    if not prepared.text:
        raise InvalidRequest("the input has no text (after removing markup and whitespace)", param="text")
    truncated_for = "max_input_chars" if prepared.truncated else None
    text = prepared.text
    spec = task.build(text, request.params)
    max_tokens = request.max_tokens or spec.max_tokens
    if measure is not None:
        text, spec, max_tokens, cut = await _fit(name, request, task.build, text, max_tokens, measure)
        truncated_for = "context" if cut else truncated_for
    generated = await generate(_call(name, request, spec, max_tokens))
    output = _read_answer(generated, spec, request.max_tokens is not None, max_tokens)
    final = spec.postprocess(output, text)
    problems = validate(final, spec.schema)
    if problems:  # a post-processing bug, never the model's fault
        raise EngineGenerateError(f"task {name!r} formatted an invalid answer: {problems[0]}")
    return TaskResult(
        task=name,
        model=request.model,
        output=final,
        schema=spec.schema,
        input=_report(prepared, text, truncated_for),
        prompt_tokens=generated.prompt_tokens,
        completion_tokens=generated.completion_tokens,
        finish_reason=generated.finish_reason,
        digest=generated.digest,
    )


async def _fit(
    name: str,
    request: TaskRequest,
    build: Callable[[str, Mapping[str, Any]], TaskSpec],
    text: str,
    max_tokens: int,
    measure: Measure,
) -> tuple[str, TaskSpec, int, bool]:
    """Cut ``text`` (and, if both cannot fit, the output budget down to half the room) until the
    prompt plus the answer fit the model's context. Returns (text, spec, max_tokens, was cut)."""
    explicit = request.max_tokens is not None
    empty = await measure(_call(name, request, build("", request.params), max_tokens))
    if empty is None:
        return text, build(text, request.params), max_tokens, False
    room = empty.context_tokens - empty.prompt_tokens - _MARGIN_TOKENS
    if room < _MIN_TEXT_TOKENS + 1:
        raise InvalidRequest(
            f"model {request.model!r} has a context of {empty.context_tokens} tokens per sequence; "
            "too small for this task's instructions",
            param="model",
        )
    cut = False
    for _ in range(_FIT_ATTEMPTS):
        spec = build(text, request.params)
        wanted = max_tokens if explicit else spec.max_tokens
        size = await measure(_call(name, request, spec, wanted))
        if size is None:
            return text, spec, wanted, cut
        text_tokens = max(1, size.prompt_tokens - empty.prompt_tokens)
        out = min(wanted, max(room - text_tokens, room // 2))
        if explicit and out < wanted and text_tokens + wanted <= room:
            out = wanted
        allowed = room - out
        if text_tokens <= allowed:
            return text, spec, out, cut
        if allowed < _MIN_TEXT_TOKENS:
            raise InvalidRequest(
                f"max_tokens={wanted} leaves no room for the input in the model's context "
                f"({size.context_tokens} tokens per sequence)",
                param="max_tokens",
            )
        # Characters per token vary; aim a little under the proportional cut and measure again.
        shorter = truncate(text, max(1, int(len(text) * allowed / text_tokens * 0.95)))
        if not shorter or shorter == text:
            shorter = text[: max(1, len(text) * 9 // 10)]
        text, cut = shorter, True
    spec = build(text, request.params)
    return text, spec, min(max_tokens if explicit else spec.max_tokens, room // 2), cut


def _read_answer(generated: Generated, spec: TaskSpec, explicit: bool, max_tokens: int) -> JSONObject:
    try:
        answer = json.loads(generated.text)
    except ValueError:
        answer = None
    if answer is None or generated.finish_reason == "length":
        if generated.finish_reason == "length":
            message = f"the answer was cut off at max_tokens={max_tokens} before its JSON was complete"
            if explicit:
                raise InvalidRequest(message + "; raise max_tokens", param="max_tokens")
            raise EngineGenerateError(message)
        raise EngineGenerateError("the model's answer is not JSON")
    problems = validate(answer, spec.schema)
    if problems or not isinstance(answer, dict):
        detail = problems[0] if problems else "not a JSON object"
        raise EngineGenerateError(f"the model's answer does not match the task's schema: {detail}")
    return answer


def _report(prepared: PreparedText, text: str, truncated_for: str | None) -> InputReport:
    return InputReport(
        original_chars=prepared.original_chars,
        chars=len(text),
        html_stripped=prepared.html_stripped,
        truncated=truncated_for is not None,
        truncated_for=truncated_for,
    )
