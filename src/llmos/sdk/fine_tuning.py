"""``client.fine_tuning``: fine-tuning jobs over the server's OpenAI fine-tuning API (its
result types and calls; the shells in ``sync_resources.py`` / ``async_resources.py`` run them).

job = client.fine_tuning.create("smollm2:135m", "train.jsonl", validation="val.jsonl", epochs=3)
for event in client.fine_tuning.follow(job.id):
    print(event.message)
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeGuard

from llmos.sdk._core import Call, Stream, clean, rows, segment

Source = str | Path | bytes
"""A local JSONL file's path, its bytes, or the ``file-…`` id of one already uploaded."""

FINAL = frozenset({"succeeded", "failed", "cancelled"})


@dataclass(frozen=True)
class FineTuningJob:
    id: str
    model: str
    status: str
    fine_tuned_model: str | None
    training_file: str
    validation_file: str | None
    created_at: int
    finished_at: int | None
    trained_tokens: int | None
    hyperparameters: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    progress: dict[str, Any] | None = None
    paused: bool = False

    @property
    def final(self) -> bool:
        return self.status in FINAL

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> FineTuningJob:
        err = d.get("error")
        return cls(
            id=d["id"],
            model=d["model"],
            status=d["status"],
            fine_tuned_model=d.get("fine_tuned_model"),
            training_file=d["training_file"],
            validation_file=d.get("validation_file"),
            created_at=int(d["created_at"]),
            finished_at=d.get("finished_at"),
            trained_tokens=d.get("trained_tokens"),
            hyperparameters=dict(d.get("hyperparameters") or {}),
            error=err.get("message") if isinstance(err, Mapping) else None,
            progress=d.get("progress"),
            paused=bool(d.get("paused")),
        )


@dataclass(frozen=True)
class FineTuningEvent:
    id: str
    created_at: int
    level: str
    message: str
    type: str
    data: dict[str, Any] = field(default_factory=dict)

    @property
    def number(self) -> int:
        return int(self.id.removeprefix("ftevent-"))

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> FineTuningEvent:
        return cls(
            id=d["id"],
            created_at=int(d["created_at"]),
            level=d["level"],
            message=d["message"],
            type=d.get("type", "message"),
            data=dict(d.get("data") or {}),
        )


@dataclass(frozen=True)
class FineTuningCheckpoint:
    id: str
    created_at: int
    fine_tuning_job_id: str
    fine_tuned_model_checkpoint: str
    step_number: int
    metrics: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> FineTuningCheckpoint:
        return cls(
            id=d["id"],
            created_at=int(d["created_at"]),
            fine_tuning_job_id=d["fine_tuning_job_id"],
            fine_tuned_model_checkpoint=d["fine_tuned_model_checkpoint"],
            step_number=int(d["step_number"]),
            metrics=dict(d.get("metrics") or {}),
        )


JOBS = "/v1/fine_tuning/jobs"


def is_file_id(source: Source) -> TypeGuard[str]:
    """Whether ``source`` names a file already on the server (``file-…``), not a local path."""
    return isinstance(source, str) and source.startswith("file-")


def upload(source: Source, name: str | None) -> Call[str]:
    """Upload JSONL (checked line by line by the server) for fine-tuning; answers its ``file-…`` id."""
    if isinstance(source, bytes):
        content, filename = source, name or "train.jsonl"
    else:
        content, filename = Path(source).read_bytes(), name or Path(source).name
    return Call(
        "POST",
        "/v1/files",
        lambda body: str(body["id"]),
        files={"file": (filename, content)},
        form={"purpose": "fine-tune"},
    )


def hyperparameters(epochs: int | None, merge: bool, extra: Mapping[str, Any] | None) -> dict[str, Any]:
    """The job's ``hyperparameters`` body: ``extra`` (learning_rate_multiplier, batch_size, lora_rank,
    ...) with ``n_epochs`` and ``merge`` when given."""
    return {**(extra or {}), **clean({"n_epochs": epochs, "merge": True if merge else None})}


def create(
    model: str, training_file: str, validation_file: str | None, hp: Mapping[str, Any], suffix: str | None
) -> Call[FineTuningJob]:
    body = clean(
        {
            "model": model,
            "training_file": training_file,
            "validation_file": validation_file,
            "hyperparameters": dict(hp),
            "suffix": suffix or None,
        }
    )
    return Call("POST", JOBS, FineTuningJob.from_json, json=body)


def list_jobs(limit: int) -> Call[list[FineTuningJob]]:
    return Call("GET", JOBS, rows(FineTuningJob.from_json), params={"limit": limit})


def get(job_id: str) -> Call[FineTuningJob]:
    return Call("GET", f"{JOBS}/{segment(job_id)}", FineTuningJob.from_json)


def cancel(job_id: str) -> Call[FineTuningJob]:
    return Call("POST", f"{JOBS}/{segment(job_id)}/cancel", FineTuningJob.from_json)


def events(job_id: str, limit: int) -> Call[list[FineTuningEvent]]:
    """The newest ``limit`` events, oldest first (the API pages newest first)."""
    return Call(
        "GET",
        f"{JOBS}/{segment(job_id)}/events",
        lambda body: [FineTuningEvent.from_json(d) for d in reversed(body["data"])],
        params={"limit": limit},
    )


def checkpoints(job_id: str, limit: int) -> Call[list[FineTuningCheckpoint]]:
    return Call(
        "GET",
        f"{JOBS}/{segment(job_id)}/checkpoints",
        rows(FineTuningCheckpoint.from_json),
        params={"limit": limit},
    )


def follow(job_id: str) -> Stream[FineTuningEvent]:
    """Every event of the job, oldest first, as the server writes them, until the job ends
    (the server's event stream: ``GET .../events?stream=true``)."""
    return Stream("GET", f"{JOBS}/{segment(job_id)}/events?stream=true", FineTuningEvent.from_json)
