"""``POST /api/tasks/{task}`` request and response shapes."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from llmos.server.schemas.common import Usage


class TaskRequestBody(BaseModel):
    """A task call. Unknown fields are refused (a typo must not pass silently)."""

    model_config = ConfigDict(extra="forbid")

    text: str = Field(min_length=1)
    model: str | None = Field(default=None, min_length=1)
    """Defaults to the server's default model."""
    params: dict[str, Any] = Field(default_factory=dict)
    """The task's own parameters, e.g. ``labels`` for classify, ``target_language`` for translate."""
    input_format: Literal["auto", "text", "html"] = "auto"
    max_input_chars: int | None = Field(default=None, ge=1)
    max_tokens: int | None = Field(default=None, ge=1)
    temperature: float = Field(default=0.0, ge=0.0, le=2.0)
    seed: int | None = None
    priority: int | None = Field(default=None, ge=0, le=9)
    keep_alive: str | float | None = None


class TaskInput(BaseModel):
    original_chars: int
    chars: int
    html_stripped: bool
    truncated: bool
    truncated_for: Literal["max_input_chars", "context"] | None = None


class TaskResponse(BaseModel):
    id: str
    object: Literal["task.result"] = "task.result"
    task: str
    model: str
    output: dict[str, Any]
    """The answer, valid against ``schema``."""
    output_schema: dict[str, Any] = Field(serialization_alias="schema")
    input: TaskInput
    finish_reason: str
    usage: Usage


class TaskInfo(BaseModel):
    name: str
    description: str
    params: list[str]


class TaskListResponse(BaseModel):
    data: list[TaskInfo]
