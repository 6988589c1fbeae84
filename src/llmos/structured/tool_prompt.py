"""OpenAI tool calling for models without native tool support: request parsing and prompting.

The model is told (in the system message) which functions exist and to answer either in plain
text or with one or more blocks::

    <tool_call>{"name": "get_weather", "arguments": {"city": "Paris"}}</tool_call>

:mod:`llmos.structured.tool_grammar` constrains that output, :mod:`llmos.structured.tool_parser`
reads it back into OpenAI ``tool_calls``. History messages that carry tool calls (assistant) or
tool results (role ``tool``) are rewritten into plain user/assistant messages any chat template
can render.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from llmos.errors import InvalidRequest
from llmos.types import JSON, ChatMessage

CALL_OPEN = "<tool_call>"
CALL_CLOSE = "</tool_call>"
RESULT_OPEN = "<tool_response>"
RESULT_CLOSE = "</tool_response>"

_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
ChoiceMode = Literal["none", "auto", "required", "function"]


@dataclass(frozen=True)
class FunctionSpec:
    """One callable function from a request's ``tools``."""

    name: str
    description: str = ""
    parameters: JSON = field(default_factory=lambda: {"type": "object", "properties": {}})
    strict: bool = False

    def signature(self) -> JSON:
        out: JSON = {"name": self.name}
        if self.description:
            out["description"] = self.description
        out["parameters"] = self.parameters
        return out


@dataclass(frozen=True)
class ToolChoice:
    """``mode`` "function" means the call of ``name`` is forced."""

    mode: ChoiceMode
    name: str | None = None


def parse_tools(tools: Sequence[Mapping[str, Any]] | None) -> tuple[FunctionSpec, ...]:
    """Validate an OpenAI ``tools`` list; raises InvalidRequest (param ``tools``)."""
    if not tools:
        return ()
    specs: list[FunctionSpec] = []
    for i, tool in enumerate(tools):
        where = f"tools[{i}]"
        if not isinstance(tool, Mapping) or tool.get("type") != "function":
            raise InvalidRequest(f"{where}: only tools of type 'function' are supported", param="tools")
        fn = tool.get("function")
        if not isinstance(fn, Mapping):
            raise InvalidRequest(f"{where}.function is required", param="tools")
        name = fn.get("name")
        if not isinstance(name, str) or not _NAME.match(name):
            raise InvalidRequest(f"{where}.function.name must match [a-zA-Z0-9_-]{{1,64}}", param="tools")
        if any(s.name == name for s in specs):
            raise InvalidRequest(f"{where}: duplicate function name {name!r}", param="tools")
        params = fn.get("parameters", {"type": "object", "properties": {}})
        if not isinstance(params, Mapping):
            raise InvalidRequest(f"{where}.function.parameters must be a JSON Schema object", param="tools")
        description = fn.get("description") or ""
        if not isinstance(description, str):
            raise InvalidRequest(f"{where}.function.description must be a string", param="tools")
        specs.append(FunctionSpec(name, description, dict(params), bool(fn.get("strict", False))))
    return tuple(specs)


def parse_tool_choice(choice: Any, functions: Sequence[FunctionSpec]) -> ToolChoice:
    """Validate ``tool_choice``; the default is ``auto`` with tools and ``none`` without."""
    if choice is None:
        return ToolChoice("auto" if functions else "none")
    if choice in ("none", "auto", "required"):
        if choice != "none" and not functions:
            raise InvalidRequest(f"tool_choice {choice!r} needs at least one tool", param="tool_choice")
        return ToolChoice(choice)
    if isinstance(choice, Mapping) and choice.get("type") == "function":
        fn = choice.get("function")
        name = fn.get("name") if isinstance(fn, Mapping) else None
        if not any(f.name == name for f in functions):
            raise InvalidRequest(f"tool_choice names an unknown function {name!r}", param="tool_choice")
        return ToolChoice("function", str(name))
    raise InvalidRequest(
        "tool_choice must be 'none', 'auto', 'required' or {'type': 'function', 'function': {'name': ...}}",
        param="tool_choice",
    )


def tools_instruction(functions: Sequence[FunctionSpec], choice: ToolChoice, *, parallel: bool) -> str:
    """The system-prompt text that describes the functions and the call format."""
    signatures = "\n".join(json.dumps(f.signature(), ensure_ascii=False) for f in functions)
    example = f'{CALL_OPEN}{{"name": "<function-name>", "arguments": {{<arguments>}}}}{CALL_CLOSE}'
    lines = [
        "You can call these functions:",
        signatures,
        f"To call a function, reply with {example}, with arguments matching the function's parameters.",
    ]
    if choice.mode == "auto":
        lines.append("If no function is needed, reply normally in plain text.")
    elif choice.mode == "required":
        lines.append("You must call a function now.")
    elif choice.mode == "function":
        lines.append(f"You must call the function {choice.name!r} now.")
    if parallel and choice.mode in ("auto", "required"):
        lines.append("You may call several functions, one block each.")
    lines.append(f"Results come back inside {RESULT_OPEN}...{RESULT_CLOSE}.")
    return "\n".join(lines)


def with_system_text(messages: Sequence[ChatMessage], text: str) -> list[ChatMessage]:
    """``messages`` with ``text`` appended to the first system message (or a new one first)."""
    out = [dict(m) for m in messages]
    if out and out[0].get("role") in ("system", "developer"):
        current = _text_of(out[0].get("content"))
        out[0] = {"role": "system", "content": f"{current}\n\n{text}" if current else text}
    else:
        out.insert(0, {"role": "system", "content": text})
    return out


def render_tool_history(messages: Sequence[ChatMessage]) -> list[ChatMessage]:
    """Rewrite tool-calling history into plain messages any chat template can render.

    An assistant message's ``tool_calls`` become ``<tool_call>`` blocks in its content (the same
    text the model is asked to produce); consecutive ``tool`` messages become one ``user``
    message of ``<tool_response>`` blocks naming the function each result answers.
    Raises InvalidRequest (param ``messages``) for a malformed tool message.
    """
    names: dict[str, str] = {}
    out: list[ChatMessage] = []
    for i, msg in enumerate(messages):
        role = msg.get("role")
        if role == "assistant" and msg.get("tool_calls"):
            blocks = []
            for call in msg["tool_calls"]:
                fn = call.get("function") if isinstance(call, Mapping) else None
                if not isinstance(fn, Mapping) or not isinstance(fn.get("name"), str):
                    raise InvalidRequest(
                        f"messages[{i}].tool_calls: each needs function.name", param="messages"
                    )
                names[str(call.get("id", ""))] = fn["name"]
                blocks.append(format_call(fn["name"], _arguments_value(fn.get("arguments"), i)))
            text = _text_of(msg.get("content"))
            out.append({"role": "assistant", "content": "\n".join([text, *blocks] if text else blocks)})
        elif role == "tool":
            call_id = msg.get("tool_call_id")
            if not isinstance(call_id, str):
                raise InvalidRequest(f"messages[{i}]: a tool message needs tool_call_id", param="messages")
            result: JSON = {
                "name": names.get(call_id, msg.get("name", "")),
                "content": _text_of(msg.get("content")),
            }
            block = f"{RESULT_OPEN}{json.dumps(result, ensure_ascii=False)}{RESULT_CLOSE}"
            if out and out[-1].get("_tool_results"):
                out[-1]["content"] += "\n" + block
            else:
                out.append({"role": "user", "content": block, "_tool_results": True})
        else:
            out.append(dict(msg))
    for msg in out:
        msg.pop("_tool_results", None)
    return out


def format_call(name: str, arguments: Any) -> str:
    """The exact text of one call block, as the model is asked to write it."""
    body = json.dumps({"name": name, "arguments": arguments}, ensure_ascii=False)
    return f"{CALL_OPEN}{body}{CALL_CLOSE}"


def _arguments_value(raw: Any, index: int) -> Any:
    if raw is None or raw == "":
        return {}
    if isinstance(raw, str):
        try:
            return json.loads(raw)
        except ValueError:
            raise InvalidRequest(
                f"messages[{index}].tool_calls: function.arguments is not valid JSON", param="messages"
            ) from None
    return raw


def _text_of(content: Any) -> str:
    """Plain text of an OpenAI ``content`` (a string or a list of text parts)."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(
            str(p.get("text", "")) for p in content if isinstance(p, Mapping) and p.get("type") == "text"
        )
    return str(content)
