"""Shapes of OpenAI's files and fine-tuning API (``/v1/files``, ``/v1/fine_tuning/jobs``)."""

from __future__ import annotations

import time
from typing import Any, Literal

from pydantic import BaseModel, Field

from llmos.domain.data import Dataset
from llmos.domain.training import Checkpoint, Hyperparameters, Job, JobEvent
from llmos.server.schemas.common import RequestModel

FILE_PREFIX = "file-"


def file_id(dataset_id: int) -> str:
    return f"{FILE_PREFIX}{dataset_id}"


class FileObject(BaseModel):
    id: str
    object: Literal["file"] = "file"
    bytes: int
    created_at: int
    filename: str
    purpose: str = "fine-tune"
    status: str = "processed"
    status_details: str | None = None
    lines: int
    tokens: int

    @classmethod
    def of(cls, d: Dataset) -> FileObject:
        return cls(
            id=file_id(d.id),
            bytes=d.size,
            created_at=int(d.created_at.timestamp()),
            filename=d.name,
            lines=d.line_count,
            tokens=d.token_count,
        )


class FileList(BaseModel):
    object: Literal["list"] = "list"
    data: list[FileObject]
    has_more: bool = False


class FileDeleted(BaseModel):
    id: str
    object: Literal["file"] = "file"
    deleted: bool = True


Auto = Literal["auto"]


class OpenAIHyperparameters(RequestModel):
    """OpenAI's three knobs, plus llmos's own (LoRA rank/alpha/targets, max_seq_len, merge...)."""

    n_epochs: int | Auto | None = None
    batch_size: int | Auto | None = None
    learning_rate_multiplier: float | Auto | None = None
    learning_rate: float | None = None
    lora_rank: int | None = None
    lora_alpha: float | None = None
    lora_dropout: float | None = None
    target_modules: list[str] | None = None
    max_seq_len: int | None = None
    validation_split: float | None = None
    merge: bool | None = None

    def to_domain(self, seed: int | None) -> Hyperparameters:
        """Raises InvalidRequest for a value out of range."""
        defaults = Hyperparameters()
        values: dict[str, Any] = {}
        if isinstance(self.n_epochs, int):
            values["epochs"] = self.n_epochs
        if isinstance(self.batch_size, int):
            values["batch_size"] = self.batch_size
        if self.learning_rate is not None:
            values["learning_rate"] = self.learning_rate
        elif isinstance(self.learning_rate_multiplier, float | int):
            values["learning_rate"] = defaults.learning_rate * float(self.learning_rate_multiplier)
        for name in ("lora_rank", "lora_alpha", "lora_dropout", "max_seq_len", "validation_split", "merge"):
            value = getattr(self, name)
            if value is not None:
                values[name] = value
        if self.target_modules is not None:
            values["target_modules"] = self.target_modules
        if seed is not None:
            values["seed"] = seed
        return Hyperparameters.from_dict(values)


class SupervisedMethod(RequestModel):
    hyperparameters: OpenAIHyperparameters | None = None


class Method(RequestModel):
    type: Literal["supervised"] = "supervised"
    supervised: SupervisedMethod | None = None


class JobCreate(RequestModel):
    model: str = Field(min_length=1, max_length=330)
    training_file: str = Field(min_length=1, max_length=100)
    validation_file: str | None = Field(default=None, max_length=100)
    hyperparameters: OpenAIHyperparameters | None = None
    method: Method | None = None
    suffix: str | None = Field(default=None, max_length=64)
    seed: int | None = None

    def hyper(self) -> Hyperparameters:
        given = self.hyperparameters
        if given is None and self.method is not None and self.method.supervised is not None:
            given = self.method.supervised.hyperparameters
        return (given or OpenAIHyperparameters()).to_domain(self.seed)


class JobError(BaseModel):
    code: str
    message: str
    param: str | None = None


class JobOut(BaseModel):
    id: str
    object: Literal["fine_tuning.job"] = "fine_tuning.job"
    created_at: int
    finished_at: int | None
    model: str
    fine_tuned_model: str | None
    organization_id: str
    status: str
    hyperparameters: dict[str, Any]
    training_file: str
    validation_file: str | None
    result_files: list[str] = Field(default_factory=list)
    trained_tokens: int | None
    error: JobError | None
    seed: int
    suffix: str | None
    estimated_finish: int | None = None
    integrations: list[Any] = Field(default_factory=list)
    metadata: dict[str, str] | None = None
    method: dict[str, Any]
    progress: dict[str, Any] | None = None
    """llmos extension: the latest step, epoch, losses, tokens/s and ETA."""
    paused: bool = False
    """llmos extension: paused while inference is queued."""

    @classmethod
    def of(cls, job: Job) -> JobOut:
        hp = job.hyperparameters.to_dict()
        openai_hp = {"n_epochs": hp["epochs"], "batch_size": hp["batch_size"], **hp}
        eta = None
        if job.progress is not None and job.progress.eta_seconds is not None and job.state == "running":
            eta = int(time.time() + job.progress.eta_seconds)
        return cls(
            id=job.id,
            created_at=int(job.created_at.timestamp()),
            finished_at=int(job.finished_at.timestamp()) if job.finished_at else None,
            model=job.model,
            fine_tuned_model=job.result_model,
            organization_id=job.tenant,
            status=job.state,
            hyperparameters=openai_hp,
            training_file=file_id(job.training_dataset),
            validation_file=file_id(job.validation_dataset) if job.validation_dataset is not None else None,
            trained_tokens=job.trained_tokens if job.final else None,
            error=JobError(code="training_failed", message=job.error)
            if job.state == "failed" and job.error
            else None,
            seed=job.hyperparameters.seed,
            suffix=job.suffix,
            estimated_finish=eta,
            method={"type": "supervised", "supervised": {"hyperparameters": openai_hp}},
            progress=job.progress.to_dict() if job.progress else None,
            paused=job.paused,
        )


class JobList(BaseModel):
    object: Literal["list"] = "list"
    data: list[JobOut]
    has_more: bool


class EventOut(BaseModel):
    id: str
    object: Literal["fine_tuning.job.event"] = "fine_tuning.job.event"
    created_at: int
    level: str
    message: str
    type: str
    data: dict[str, Any]

    @classmethod
    def of(cls, e: JobEvent) -> EventOut:
        return cls(
            id=f"ftevent-{e.id}",
            created_at=int(e.created_at.timestamp()),
            level=e.level,
            message=e.message,
            type=e.type,
            data=e.data,
        )


class EventList(BaseModel):
    object: Literal["list"] = "list"
    data: list[EventOut]
    has_more: bool


class CheckpointOut(BaseModel):
    id: str
    object: Literal["fine_tuning.job.checkpoint"] = "fine_tuning.job.checkpoint"
    created_at: int
    fine_tuning_job_id: str
    fine_tuned_model_checkpoint: str
    step_number: int
    metrics: dict[str, Any]

    @classmethod
    def of(cls, c: Checkpoint, job: Job) -> CheckpointOut:
        return cls(
            id=c.id,
            created_at=int(c.created_at.timestamp()),
            fine_tuning_job_id=c.job_id,
            fine_tuned_model_checkpoint=f"{job.result_model or job.model}:ckpt-step-{c.step}",
            step_number=c.step,
            metrics={"step": c.step, **c.metrics},
        )


class CheckpointList(BaseModel):
    object: Literal["list"] = "list"
    data: list[CheckpointOut]
    has_more: bool = False
