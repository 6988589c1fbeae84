"""Structured output and tool calling, independent of any engine.

JSON Schema → GBNF for llama.cpp's grammar sampler (:mod:`.json_schema`), OpenAI tool calling
for models without native tool support (:mod:`.tools`, :mod:`.tool_grammar`, :mod:`.tool_parser`),
post-validation (:mod:`.validation`), and :func:`plan_chat`, the one call a chat route makes.
"""

from __future__ import annotations

from llmos.structured.json_schema import compile_json_schema, json_object_grammar
from llmos.structured.plan import ChatPlan, ResponseFormat, parse_response_format, plan_chat
from llmos.structured.tool_grammar import tool_call_grammar
from llmos.structured.tool_parser import (
    ContentDelta,
    ParsedAnswer,
    StreamDelta,
    ToolCall,
    ToolCallDelta,
    ToolCallStream,
    parse_answer,
)
from llmos.structured.tool_prompt import (
    FunctionSpec,
    ToolChoice,
    parse_tool_choice,
    parse_tools,
    render_tool_history,
)
from llmos.structured.validation import validate, validate_text

__all__ = [
    "ChatPlan",
    "ContentDelta",
    "FunctionSpec",
    "ParsedAnswer",
    "ResponseFormat",
    "StreamDelta",
    "ToolCall",
    "ToolCallDelta",
    "ToolCallStream",
    "ToolChoice",
    "compile_json_schema",
    "json_object_grammar",
    "parse_answer",
    "parse_response_format",
    "parse_tool_choice",
    "parse_tools",
    "plan_chat",
    "render_tool_history",
    "tool_call_grammar",
    "validate",
    "validate_text",
]
