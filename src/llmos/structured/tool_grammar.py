"""The GBNF grammar that constrains a tool-calling answer.

``required``: the whole output is one call block (or, with parallel calls, up to
:data:`MAX_PARALLEL_CALLS` blocks separated by a newline); a named function: exactly one block of
that function (a small model told to call it tends to repeat the call otherwise). Each block is
``<tool_call>{"name": "<f>", "arguments": <args>}</tool_call>`` where ``<args>`` is compiled from
function ``f``'s parameters schema, alternated on the name.

``auto``: either such call blocks, or content that does not start with ``<`` (free text, or the
response format's JSON when one is set).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from llmos.structured.gbnf import GrammarBuilder, literal
from llmos.structured.json_schema import SchemaCompiler, Whitespace
from llmos.structured.tool_prompt import CALL_CLOSE, CALL_OPEN, FunctionSpec, ToolChoice

MAX_PARALLEL_CALLS = 4
FREE_TEXT = "([^<] .*)?"


def tool_call_grammar(
    functions: Sequence[FunctionSpec],
    choice: ToolChoice,
    *,
    parallel: bool,
    content_schema: Mapping[str, Any] | None = None,
    content_json_object: bool = False,
    whitespace: Whitespace = "compact",
) -> str | None:
    """GBNF for an answer under ``choice``; None when nothing needs constraining (``none``).

    ``content_schema`` / ``content_json_object``: in ``auto`` mode, the non-call alternative is that
    JSON instead of free text. Raises InvalidRequest (param ``tools``) for a parameters schema the
    compiler does not support.
    """
    if choice.mode == "none" or not functions:
        return None
    chosen = [f for f in functions if choice.mode != "function" or f.name == choice.name]
    builder = GrammarBuilder()
    ws = builder.add("ws", '" "?')
    alternatives = []
    for index, fn in enumerate(functions):
        if fn not in chosen:
            continue
        compiler = SchemaCompiler(
            builder,
            fn.parameters,
            param="tools",
            whitespace=whitespace,
            path=f"tools[{index}].function.parameters",
            name_hint=f"{fn.name}-args",
        )
        args = compiler.compile_root()
        head = literal(json.dumps(fn.name) + ",")
        alternatives.append(builder.add(f"{fn.name}-call", f'{head} {ws} "\\"arguments\\":" {ws} {args}'))
    body = f'{literal(CALL_OPEN)} "{{" {ws} "\\"name\\":" {ws} ({" | ".join(alternatives)}) {ws} "}}" {literal(CALL_CLOSE)}'
    call = builder.add("tool-call", body)
    several = parallel and choice.mode != "function"
    calls = f'{call} ("\\n"? {call}){{0,{MAX_PARALLEL_CALLS - 1}}}' if several else call
    if choice.mode != "auto":
        builder.set_root(calls)
        return builder.render()
    calls_rule = builder.add("tool-calls", calls)
    if content_schema is not None:
        content = SchemaCompiler(
            builder, content_schema, param="response_format", whitespace=whitespace
        ).compile_root()
    elif content_json_object:
        content = SchemaCompiler(builder, {}, whitespace=whitespace).generic_object()
    else:
        content = builder.add("free-text", FREE_TEXT)
    builder.set_root(f"{calls_rule} | {content}")
    return builder.render()
