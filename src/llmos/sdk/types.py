"""What the SDK returns: plain frozen dataclasses parsed from the server's JSON."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

ChatMessage = dict[str, Any]


@dataclass(frozen=True)
class Model:
    name: str
    digest: str
    size: int
    format: str
    architecture: str = ""
    parameter_count: int = 0
    quantization: str = ""
    context_length: int = 0
    license: str = ""
    source: str = ""
    parent: str | None = None
    created_at: str | None = None
    parameters: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Model:
        return cls(**{k: d[k] for k in cls.__dataclass_fields__ if k in d})


@dataclass(frozen=True)
class ModelDetail(Model):
    chat_template: str | None = None
    chat_template_source: str | None = None
    """``file``, ``catalog`` or ``guessed`` (see ``chat_template_guess``); None when it does not chat."""
    chat_template_guess: str | None = None
    versions: tuple[Model, ...] = ()
    adapter_of: str | None = None
    """A fine-tuned LoRA adapter's base model digest (it runs on that base's engine core)."""
    lineage: dict[str, Any] | None = None
    """A fine-tune's making: ``job_id``, ``base_model``, ``base_digest``,
    ``training_dataset_digest``, ``validation_dataset_digest``, ``hyperparameters``, ``metrics``
    (final losses), ``merged``."""

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> ModelDetail:
        base = {k: d[k] for k in Model.__dataclass_fields__ if k in d}
        versions = tuple(Model.from_json(v) for v in d.get("versions", []))
        return cls(
            **base,
            chat_template=d.get("chat_template"),
            chat_template_source=d.get("chat_template_source"),
            chat_template_guess=d.get("chat_template_guess"),
            versions=versions,
            adapter_of=d.get("adapter_of"),
            lineage=d.get("lineage"),
        )


@dataclass(frozen=True)
class Progress:
    status: str
    completed: int | None = None
    total: int | None = None
    digest: str | None = None
    done: bool = False

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Progress:
        return cls(**{k: d[k] for k in cls.__dataclass_fields__ if k in d})


@dataclass(frozen=True)
class RunningModel:
    name: str
    digest: str
    state: str
    size: int = 0
    estimated_bytes: int = 0
    measured_bytes: int | None = None
    in_flight: int = 0
    running: int = 0
    queued: int = 0
    pinned: bool = False
    keep_alive: float | None = None
    expires_at: float | None = None
    weights: str = ""
    pid: int = 0
    restarts: int = 0
    last_death: str = ""

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> RunningModel:
        return cls(**{k: d[k] for k in cls.__dataclass_fields__ if k in d})


@dataclass(frozen=True)
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0

    @classmethod
    def from_json(cls, d: dict[str, Any] | None) -> Usage:
        d = d or {}
        return cls(
            prompt_tokens=int(d.get("prompt_tokens", 0)),
            completion_tokens=int(d.get("completion_tokens", 0)),
            total_tokens=int(d.get("total_tokens", 0)),
        )


@dataclass(frozen=True)
class Generation:
    """One finished generation (the first choice) with its usage."""

    text: str
    finish_reason: str | None
    usage: Usage
    model: str
    id: str = ""
    choices: tuple[str, ...] = ()
    """Every choice's text, when ``n > 1``."""
    tool_calls: tuple[dict[str, Any], ...] = ()
    """The first choice's tool calls (OpenAI's shape), when the model called tools."""

    def __str__(self) -> str:
        return self.text

    @property
    def message(self) -> ChatMessage:
        """The assistant message to append to the history (with its tool calls, if any)."""
        if self.tool_calls:
            return {"role": "assistant", "content": self.text or None, "tool_calls": list(self.tool_calls)}
        return {"role": "assistant", "content": self.text}
