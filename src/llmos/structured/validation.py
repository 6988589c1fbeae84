"""Check a JSON instance against a JSON Schema after generation (post-processing).

The grammar already confines output to the schema; this is the independent check the server and
the task pipelines run before they hand JSON to a caller (and what the tests assert with).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from jsonschema import Draft202012Validator, FormatChecker


def validate(instance: Any, schema: Mapping[str, Any]) -> list[str]:
    """Every way ``instance`` violates ``schema``, as readable messages; empty when valid."""
    validator = Draft202012Validator(dict(schema), format_checker=FormatChecker())
    problems = sorted(validator.iter_errors(instance), key=lambda e: list(e.absolute_path))
    return [f"{'/'.join(str(p) for p in e.absolute_path) or '<root>'}: {e.message}" for e in problems]


def validate_text(text: str, schema: Mapping[str, Any] | None) -> list[str]:
    """Like :func:`validate` on ``text`` parsed as JSON; a parse failure is reported as a problem.

    ``schema`` None checks only that the text is a JSON object (``json_object`` mode).
    """
    try:
        instance = json.loads(text)
    except ValueError as exc:
        return [f"<root>: not valid JSON ({exc})"]
    if schema is None:
        return [] if isinstance(instance, dict) else ["<root>: not a JSON object"]
    return validate(instance, schema)
