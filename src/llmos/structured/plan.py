"""One entry point for a chat request's structured-output and tool-calling options.

:func:`plan_chat` reads ``response_format``, ``tools``, ``tool_choice`` and
``parallel_tool_calls`` and returns a :class:`ChatPlan`: the messages to render (tool
instructions and tool history rewritten for any chat template), the GBNF grammar for
``SamplingParams.grammar``, and how to read the model's answer back (whole or streamed).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from llmos.errors import InvalidRequest
from llmos.structured.json_schema import Whitespace, compile_json_schema, json_object_grammar
from llmos.structured.tool_grammar import tool_call_grammar
from llmos.structured.tool_parser import (
    CallWatcher,
    IdFactory,
    ParsedAnswer,
    ToolCallStream,
    new_call_id,
    parse_answer,
)
from llmos.structured.tool_prompt import (
    FunctionSpec,
    ToolChoice,
    parse_tool_choice,
    parse_tools,
    render_tool_history,
    tools_instruction,
    with_system_text,
)
from llmos.structured.validation import validate_text
from llmos.types import JSON, ChatMessage, FinishReason

FormatKind = Literal["text", "json_object", "json_schema"]


@dataclass(frozen=True)
class ResponseFormat:
    kind: FormatKind = "text"
    schema: JSON | None = None
    name: str = ""
    strict: bool = False


def parse_response_format(value: Any) -> ResponseFormat:
    """Validate an OpenAI ``response_format``; raises InvalidRequest (param ``response_format``)."""
    if value is None:
        return ResponseFormat()
    if not isinstance(value, Mapping) or value.get("type") not in ("text", "json_object", "json_schema"):
        raise InvalidRequest(
            "response_format.type must be 'text', 'json_object' or 'json_schema'", param="response_format"
        )
    if value["type"] != "json_schema":
        return ResponseFormat(value["type"])
    spec = value.get("json_schema")
    if not isinstance(spec, Mapping) or not isinstance(spec.get("schema", {}), Mapping):
        raise InvalidRequest(
            "response_format.json_schema.schema must be a JSON Schema object", param="response_format"
        )
    name = spec.get("name", "")
    if not isinstance(name, str):
        raise InvalidRequest("response_format.json_schema.name must be a string", param="response_format")
    return ResponseFormat("json_schema", dict(spec.get("schema", {})), name, bool(spec.get("strict", False)))


@dataclass(frozen=True)
class ChatPlan:
    """What to render, how to constrain, and how to read back one chat completion."""

    messages: list[ChatMessage]
    grammar: str | None
    response_format: ResponseFormat = field(default_factory=ResponseFormat)
    functions: tuple[FunctionSpec, ...] = ()
    tool_choice: ToolChoice = field(default_factory=lambda: ToolChoice("none"))
    parallel_tool_calls: bool = True
    id_factory: IdFactory = new_call_id

    @property
    def uses_tools(self) -> bool:
        return self.tool_choice.mode != "none" and bool(self.functions)

    @property
    def max_calls(self) -> int | None:
        """The calls one answer may make: one without parallel calls or with a forced function."""
        return 1 if not self.parallel_tool_calls or self.tool_choice.mode == "function" else None

    def parse(self, text: str) -> ParsedAnswer:
        """The answer as OpenAI message fields (content, or tool calls: each distinct complete
        call, at most :attr:`max_calls`; never the calls' markup as content)."""
        if not self.uses_tools:
            return ParsedAnswer(text)
        return parse_answer(text, id_factory=self.id_factory, max_calls=self.max_calls)

    def stream(self) -> ToolCallStream | None:
        """A parser for streamed deltas; None when text passes through unchanged (no tools)."""
        if not self.uses_tools:
            return None
        return ToolCallStream(id_factory=self.id_factory, max_calls=self.max_calls)

    def watcher(self) -> CallWatcher | None:
        """Tells when to stop generating a tool-calling answer (a repeated call, or the calls
        allowed made); None without tools."""
        return CallWatcher(self.max_calls) if self.uses_tools else None

    def finish_reason(self, answer: ParsedAnswer, engine_reason: FinishReason) -> FinishReason:
        """``tool_calls`` when the model stopped after calling tools, else the engine's reason."""
        return "tool_calls" if answer.tool_calls and engine_reason == "stop" else engine_reason

    def problems(self, answer: ParsedAnswer) -> list[str]:
        """Post-validation of JSON content against the response format; empty when fine or text."""
        if answer.content is None or self.response_format.kind == "text":
            return []
        return validate_text(answer.content, self.response_format.schema)


def plan_chat(
    messages: Sequence[ChatMessage],
    *,
    response_format: Any = None,
    tools: Sequence[Mapping[str, Any]] | None = None,
    tool_choice: Any = None,
    parallel_tool_calls: bool | None = None,
    schema_hint: bool = True,
    whitespace: Whitespace = "compact",
    id_factory: IdFactory = new_call_id,
) -> ChatPlan:
    """Plan one chat completion. Raises InvalidRequest (param names the offending field).

    ``schema_hint``: also tell the model the schema in the system message (the grammar is what
    guarantees the shape; the hint helps a small model fill it sensibly).
    """
    fmt = parse_response_format(response_format)
    functions = parse_tools(tools)
    choice = parse_tool_choice(tool_choice, functions)
    parallel = True if parallel_tool_calls is None else bool(parallel_tool_calls)
    rendered = render_tool_history(messages)
    if fmt.kind == "json_schema" and schema_hint:
        rendered = with_system_text(
            rendered,
            "Answer with a JSON object matching this schema: " + json.dumps(fmt.schema, ensure_ascii=False),
        )
    elif fmt.kind == "json_object" and schema_hint:
        rendered = with_system_text(rendered, "Answer with a JSON object.")
    grammar: str | None
    if choice.mode != "none" and functions:
        rendered = with_system_text(rendered, tools_instruction(functions, choice, parallel=parallel))
        grammar = tool_call_grammar(
            functions,
            choice,
            parallel=parallel,
            content_schema=fmt.schema if fmt.kind == "json_schema" else None,
            content_json_object=fmt.kind == "json_object",
            whitespace=whitespace,
        )
    elif fmt.kind == "json_schema":
        grammar = compile_json_schema(fmt.schema or {}, whitespace=whitespace)
    elif fmt.kind == "json_object":
        grammar = json_object_grammar(whitespace=whitespace)
    else:
        grammar = None
    return ChatPlan(rendered, grammar, fmt, functions, choice, parallel, id_factory)
