"""Domain types of training: hyperparameters, jobs, events, checkpoints, progress (what
``storage`` keeps and ``llmos.training`` runs)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields, replace
from datetime import datetime
from typing import Any, Literal

from llmos.errors import InvalidRequest

JobState = Literal["queued", "running", "succeeded", "failed", "cancelled"]
FINAL_STATES: frozenset[str] = frozenset({"succeeded", "failed", "cancelled"})

LORA_TARGETS: tuple[str, ...] = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
"""Modules a LoRA may train: the projections llama.cpp's adapter format can carry (it refuses
``embed_tokens`` and ``lm_head``)."""

YieldPolicy = Literal["pause", "threads", "none"]
"""What a running job does while interactive inference is queued: ``pause`` between optimizer
steps, drop to one thread (``threads``), or nothing (``none``)."""


@dataclass(frozen=True)
class Hyperparameters:
    """What a job trains with; :meth:`checked` validates every field against its range."""

    epochs: int = 3
    learning_rate: float = 2e-4
    batch_size: int = 4
    max_seq_len: int = 512
    lora_rank: int = 8
    lora_alpha: float = 16.0
    lora_dropout: float = 0.0
    target_modules: tuple[str, ...] = ("q_proj", "k_proj", "v_proj", "o_proj")
    seed: int = 42
    validation_split: float = 0.1
    """Share of the training examples held out for validation when no validation file is given
    (none when the dataset has fewer than 10 examples)."""
    merge: bool = False
    """Register a full merged GGUF instead of an adapter on top of the base."""

    def checked(self) -> Hyperparameters:
        """This, validated. Raises InvalidRequest naming the field and its range."""
        _range("epochs", self.epochs, 1, 100)
        _range("learning_rate", self.learning_rate, 1e-7, 1e-1)
        _range("batch_size", self.batch_size, 1, 64)
        _range("max_seq_len", self.max_seq_len, 16, 8192)
        _range("lora_rank", self.lora_rank, 1, 256)
        _range("lora_alpha", self.lora_alpha, 0.01, 1024)
        _range("lora_dropout", self.lora_dropout, 0.0, 0.5)
        _range("seed", self.seed, 0, 2**31 - 1)
        _range("validation_split", self.validation_split, 0.0, 0.5)
        if isinstance(self.target_modules, str) or not self.target_modules:
            raise InvalidRequest(
                f"target_modules must be a non-empty list of {', '.join(LORA_TARGETS)}",
                param="hyperparameters.target_modules",
            )
        bad = [m for m in self.target_modules if m not in LORA_TARGETS]
        if bad:
            raise InvalidRequest(
                f"target_modules {bad} cannot be trained into a llama.cpp adapter; choose from "
                f"{', '.join(LORA_TARGETS)}",
                param="hyperparameters.target_modules",
            )
        return replace(self, target_modules=tuple(dict.fromkeys(self.target_modules)))

    def to_dict(self) -> dict[str, Any]:
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        out["target_modules"] = list(self.target_modules)
        return out

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> Hyperparameters:
        """From JSON-ish values (unknown keys refused). Raises InvalidRequest."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise InvalidRequest(
                f"unknown hyperparameter(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}",
                param="hyperparameters",
            )
        clean = dict(values)
        if "target_modules" in clean and isinstance(clean["target_modules"], list):
            clean["target_modules"] = tuple(clean["target_modules"])
        for name, kind in (("epochs", int), ("batch_size", int), ("max_seq_len", int), ("lora_rank", int)):
            if name in clean and (isinstance(clean[name], bool) or not isinstance(clean[name], kind)):
                raise InvalidRequest(f"{name} must be an integer", param=f"hyperparameters.{name}")
        return cls(**clean).checked()


def _range(name: str, value: object, low: float, high: float) -> None:
    ok = (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and math.isfinite(value)
        and low <= value <= high
    )
    if not ok:
        raise InvalidRequest(
            f"{name} must be between {low:g} and {high:g} (got {value!r})", param=f"hyperparameters.{name}"
        )


@dataclass(frozen=True)
class JobSpec:
    """What a caller asks for; the manager resolves names into a :class:`Job`."""

    model: str
    training_dataset: int
    validation_dataset: int | None = None
    hyperparameters: Hyperparameters = field(default_factory=Hyperparameters)
    suffix: str | None = None


@dataclass(frozen=True)
class Progress:
    """One progress report of a running job."""

    step: int
    total_steps: int
    epoch: float
    train_loss: float | None = None
    valid_loss: float | None = None
    tokens_per_second: float | None = None
    eta_seconds: float | None = None
    trained_tokens: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


@dataclass(frozen=True)
class Job:
    id: str
    tenant: str
    model: str
    """The base model's name as the caller gave it."""
    base_digest: str
    training_dataset: int
    validation_dataset: int | None
    hyperparameters: Hyperparameters
    suffix: str | None
    state: JobState
    created_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None
    error: str | None = None
    result_model: str | None = None
    """The registered result (``family:tag``) once succeeded."""
    trained_tokens: int = 0
    progress: Progress | None = None
    paused: bool = False

    @property
    def final(self) -> bool:
        return self.state in FINAL_STATES


EventLevel = Literal["info", "warn", "error"]


@dataclass(frozen=True)
class JobEvent:
    id: int
    job_id: str
    created_at: datetime
    level: EventLevel
    message: str
    type: Literal["message", "metrics"] = "message"
    data: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Checkpoint:
    id: str
    job_id: str
    step: int
    created_at: datetime
    metrics: dict[str, Any] = field(default_factory=dict)
