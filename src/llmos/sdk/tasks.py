"""``client.tasks``: the server's task pipelines (``POST /api/tasks/{task}``).

Every answer's ``output`` is JSON valid against the task's schema (``result.schema``)::

    client.tasks.classify("The battery died after a day", labels=["hardware", "billing"]).output
    # {"label": "hardware"}
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from llmos.sdk.types import Usage

if TYPE_CHECKING:
    from llmos.sdk.async_client import AsyncClient
    from llmos.sdk.client import Client


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


def task_body(text: str, params: dict[str, Any], options: dict[str, Any]) -> dict[str, Any]:
    body: dict[str, Any] = {"text": text, "params": {k: v for k, v in params.items() if v is not None}}
    body.update({k: v for k, v in options.items() if v is not None})
    return body


class Tasks:
    """``client.tasks``: ``run(task, text, ...)`` or one method per task."""

    def __init__(self, client: Client) -> None:
        self._client = client

    def list(self) -> list[dict[str, Any]]:
        """The tasks the server runs: name, description, params."""
        return list(self._client._request("GET", "/api/tasks")["data"])

    def run(
        self, task: str, text: str, *, params: dict[str, Any] | None = None, **options: Any
    ) -> TaskResult:
        """Run ``task`` on ``text``. ``options``: model, input_format, max_input_chars, max_tokens,
        temperature, seed. Raises NotFoundError (no such task or model), BadRequestError."""
        body = task_body(text, params or {}, options)
        return TaskResult.from_json(self._client._request("POST", f"/api/tasks/{task}", json=body))

    def summarize(self, text: str, *, max_words: int | None = None, **options: Any) -> TaskResult:
        return self.run("summarize", text, params={"max_words": max_words}, **options)

    def translate(
        self, text: str, target_language: str, *, source_language: str | None = None, **options: Any
    ) -> TaskResult:
        params = {"target_language": target_language, "source_language": source_language}
        return self.run("translate", text, params=params, **options)

    def classify(
        self, text: str, labels: Sequence[str], *, multi_label: bool = False, **options: Any
    ) -> TaskResult:
        params = {"labels": list(labels), "multi_label": multi_label}
        return self.run("classify", text, params=params, **options)

    def sentiment(self, text: str, **options: Any) -> TaskResult:
        return self.run("sentiment", text, **options)

    def extract_entities(
        self,
        text: str,
        *,
        types: Sequence[str] | None = None,
        max_entities: int | None = None,
        **options: Any,
    ) -> TaskResult:
        params = {"types": list(types) if types is not None else None, "max_entities": max_entities}
        return self.run("extract_entities", text, params=params, **options)


class AsyncTasks:
    """``AsyncClient.tasks``: the same methods as :class:`Tasks`, awaited."""

    def __init__(self, client: AsyncClient) -> None:
        self._client = client

    async def list(self) -> list[dict[str, Any]]:
        return list((await self._client._request("GET", "/api/tasks"))["data"])

    async def run(
        self, task: str, text: str, *, params: dict[str, Any] | None = None, **options: Any
    ) -> TaskResult:
        body = task_body(text, params or {}, options)
        return TaskResult.from_json(await self._client._request("POST", f"/api/tasks/{task}", json=body))

    async def summarize(self, text: str, *, max_words: int | None = None, **options: Any) -> TaskResult:
        return await self.run("summarize", text, params={"max_words": max_words}, **options)

    async def translate(
        self, text: str, target_language: str, *, source_language: str | None = None, **options: Any
    ) -> TaskResult:
        params = {"target_language": target_language, "source_language": source_language}
        return await self.run("translate", text, params=params, **options)

    async def classify(
        self, text: str, labels: Sequence[str], *, multi_label: bool = False, **options: Any
    ) -> TaskResult:
        params = {"labels": list(labels), "multi_label": multi_label}
        return await self.run("classify", text, params=params, **options)

    async def sentiment(self, text: str, **options: Any) -> TaskResult:
        return await self.run("sentiment", text, **options)

    async def extract_entities(
        self,
        text: str,
        *,
        types: Sequence[str] | None = None,
        max_entities: int | None = None,
        **options: Any,
    ) -> TaskResult:
        params = {"types": list(types) if types is not None else None, "max_entities": max_entities}
        return await self.run("extract_entities", text, params=params, **options)
