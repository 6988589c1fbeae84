"""One schema-constrained chat call through the public SDK, validated on arrival.

The server constrains generation to the schema (a grammar); the apps check again with
``jsonschema`` before trusting the answer, as any client of a remote service should.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from jsonschema import Draft202012Validator

from llmos.sdk import Client


class AppError(Exception):
    """An application service could not produce a valid answer (the message says why)."""


def json_chat(
    client: Client,
    model: str,
    messages: Sequence[Mapping[str, Any]],
    schema: Mapping[str, Any],
    *,
    name: str,
    max_tokens: int,
    temperature: float = 0.0,
    seed: int | None = None,
) -> dict[str, Any]:
    """The model's answer to ``messages`` as a JSON object valid against ``schema``.

    Raises AppError when the answer is cut off (raise ``max_tokens``) or does not validate, and
    the SDK's errors for the server's.
    """
    params: dict[str, Any] = {
        "response_format": {
            "type": "json_schema",
            "json_schema": {"name": name, "schema": dict(schema), "strict": True},
        },
        "max_tokens": max_tokens,
        "temperature": temperature,
    }
    if seed is not None:
        params["seed"] = seed
    gen = client.chat(model, [dict(m) for m in messages], **params)
    if gen.finish_reason == "length":
        raise AppError(f"the {name} answer was cut off at max_tokens={max_tokens}")
    try:
        answer = json.loads(gen.text)
    except ValueError as exc:
        raise AppError(f"the {name} answer is not JSON: {exc}") from None
    errors = sorted(Draft202012Validator(dict(schema)).iter_errors(answer), key=lambda e: list(e.path))
    if errors:
        raise AppError(f"the {name} answer does not match its schema: {errors[0].message}")
    if not isinstance(answer, dict):
        raise AppError(f"the {name} answer is not a JSON object")
    return answer
