"""What crosses between the training manager and a job's process (pickled over a pipe)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from llmos.domain.training import Hyperparameters, Progress


@dataclass(frozen=True)
class TrainRequest:
    """Everything the trainer needs; paths only, the process opens no database."""

    job_id: str
    base_path: Path
    """The base model's GGUF file."""
    architecture: str
    chat_template: str | None
    bos_token: str
    eos_token: str
    train_path: Path
    valid_path: Path | None
    hyperparameters: Hyperparameters
    work_dir: Path
    """Checkpoints and results go here; the manager removes it when the job ends."""
    threads: int
    result_name: str


# ---- manager → trainer -------------------------------------------------------------------


@dataclass(frozen=True)
class Control:
    """``pause`` (between optimizer steps), ``resume``, ``cancel``, or ``threads`` (set to ``value``)."""

    command: str
    value: int = 0


# ---- trainer → manager -------------------------------------------------------------------


@dataclass(frozen=True)
class Note:
    message: str
    level: str = "info"


@dataclass(frozen=True)
class ProgressReport:
    progress: Progress


@dataclass(frozen=True)
class CheckpointSaved:
    step: int
    metrics: dict[str, Any]


@dataclass(frozen=True)
class Finished:
    """The result file (adapter or merged GGUF) and the final metrics."""

    path: Path
    merged: bool
    metrics: dict[str, Any]


@dataclass(frozen=True)
class Failed:
    reason: str


TrainerMessage = Note | ProgressReport | CheckpointSaved | Finished | Failed
