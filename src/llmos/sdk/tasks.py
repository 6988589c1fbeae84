"""``client.tasks``: the server's task pipelines (``POST /api/tasks/{task}``).

Every answer's ``output`` is JSON valid against the task's schema (``result.schema``)::

    client.tasks.classify("The battery died after a day", labels=["hardware", "billing"]).output
    # {"label": "hardware"}
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from llmos.sdk._core import Call, segment
from llmos.sdk.types import Usage


@dataclass(frozen=True)
class TaskInput:
    """What the server's pre-processing did to the input."""

    original_chars: int
    chars: int
    html_stripped: bool
    truncated: bool
    truncated_for: str | None = None


@dataclass(frozen=True)
class TaskResult:
    task: str
    model: str
    output: dict[str, Any]
    schema: dict[str, Any]
    input: TaskInput
    finish_reason: str
    usage: Usage
    id: str = ""

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> TaskResult:
        i = d.get("input") or {}
        return cls(
            task=str(d.get("task", "")),
            model=str(d.get("model", "")),
            output=dict(d.get("output") or {}),
            schema=dict(d.get("schema") or {}),
            input=TaskInput(
                original_chars=int(i.get("original_chars", 0)),
                chars=int(i.get("chars", 0)),
                html_stripped=bool(i.get("html_stripped", False)),
                truncated=bool(i.get("truncated", False)),
                truncated_for=i.get("truncated_for"),
            ),
            finish_reason=str(d.get("finish_reason", "")),
            usage=Usage.from_json(d.get("usage")),
            id=str(d.get("id", "")),
        )


def list_tasks() -> Call[list[dict[str, Any]]]:
    return Call("GET", "/api/tasks", lambda d: list(d["data"]))


def run(task: str, text: str, params: dict[str, Any] | None, options: dict[str, Any]) -> Call[TaskResult]:
    """``options``: model, input_format, max_input_chars, max_tokens, temperature, seed."""
    body: dict[str, Any] = {
        "text": text,
        "params": {k: v for k, v in (params or {}).items() if v is not None},
    }
    body.update({k: v for k, v in options.items() if v is not None})
    return Call("POST", f"/api/tasks/{segment(task)}", TaskResult.from_json, json=body)


def summarize(text: str, max_words: int | None, options: dict[str, Any]) -> Call[TaskResult]:
    return run("summarize", text, {"max_words": max_words}, options)


def translate(
    text: str, target_language: str, source_language: str | None, options: dict[str, Any]
) -> Call[TaskResult]:
    params = {"target_language": target_language, "source_language": source_language}
    return run("translate", text, params, options)


def classify(
    text: str, labels: Sequence[str], multi_label: bool, options: dict[str, Any]
) -> Call[TaskResult]:
    return run("classify", text, {"labels": list(labels), "multi_label": multi_label}, options)


def sentiment(text: str, options: dict[str, Any]) -> Call[TaskResult]:
    return run("sentiment", text, None, options)


def extract_entities(
    text: str, types: Sequence[str] | None, max_entities: int | None, options: dict[str, Any]
) -> Call[TaskResult]:
    params = {"types": list(types) if types is not None else None, "max_entities": max_entities}
    return run("extract_entities", text, params, options)
