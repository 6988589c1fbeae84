"""``/api`` (admin) request and response shapes."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from llmos.server.schemas.common import RequestModel


class PullRequest(RequestModel):
    model: str = Field(min_length=1)
    stream: bool = True


class ImportRequest(RequestModel):
    path: str = Field(min_length=1)
    """A GGUF file on the server's filesystem."""
    model: str = Field(min_length=1)
    stream: bool = True


class CopyRequest(RequestModel):
    source: str = Field(min_length=1)
    destination: str = Field(min_length=1)


class LoadRequest(RequestModel):
    model: str = Field(min_length=1)
    keep_alive: str | float | None = None
    pin: bool = False


class UnloadRequest(RequestModel):
    model: str = Field(min_length=1)


class ProgressEvent(BaseModel):
    status: str
    completed: int | None = None
    total: int | None = None
    digest: str | None = None
    done: bool = False


class Lineage(BaseModel):
    """How a fine-tuned model was made (its manifest's ``lineage``)."""

    job_id: str
    base_model: str
    base_digest: str
    training_dataset_digest: str
    validation_dataset_digest: str | None = None
    hyperparameters: dict[str, Any]
    metrics: dict[str, Any]
    """Final losses and trained tokens."""
    merged: bool


class ModelInfo(BaseModel):
    name: str
    digest: str
    size: int
    format: str
    architecture: str
    parameter_count: int
    quantization: str
    context_length: int
    license: str
    source: str
    parent: str | None
    created_at: datetime | None
    parameters: dict[str, Any]


class ModelDetail(ModelInfo):
    chat_template: str | None
    chat_template_source: str | None = None
    """``file`` (the model file's own), ``catalog`` (llmos's catalog supplies it: the file has
    none) or ``guessed`` (neither has one; llmos picked a format from the vocabulary, see
    ``chat_template_guess``); null for models that do not chat."""
    chat_template_guess: str | None = None
    versions: list[ModelInfo]
    adapter_of: str | None = None
    """For a fine-tuned LoRA adapter: the sha256 digest of the base model it runs on."""
    lineage: Lineage | None = None
    """For a fine-tune's result: how it was made."""


class ModelListResponse(BaseModel):
    models: list[ModelInfo]


class RunningModel(BaseModel):
    name: str
    digest: str
    state: str
    size: int
    estimated_bytes: int
    measured_bytes: int | None
    in_flight: int
    running: int
    queued: int
    pinned: bool
    keep_alive: float | None
    """Seconds; null means forever."""
    expires_at: float | None
    weights: str = ""
    """How the engine holds the weights, e.g. ``q8_0 (converted from q4_1)``."""
    pid: int = 0
    """The process of the model's engine core (its scheduler and engine); 0 while it loads."""
    restarts: int = 0
    """Engine cores of this model that died (and were replaced) since the server started."""
    last_death: str = ""
    """Why the last one died."""


class PsResponse(BaseModel):
    models: list[RunningModel]


class UnloadResponse(BaseModel):
    model: str
    unloaded: bool
    """False: the model is busy and unloads when its last request ends."""


class DeleteResponse(BaseModel):
    model: str
    deleted: bool = True
