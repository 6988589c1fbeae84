"""``client.fine_tuning``: fine-tuning jobs over the server's OpenAI fine-tuning API.

job = client.fine_tuning.create("smollm2:135m", "train.jsonl", validation="val.jsonl", epochs=3)
for event in client.fine_tuning.follow(job.id):
    print(event.message)
"""

from __future__ import annotations

import builtins
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

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


class _Sync(Protocol):
    def _request(self, method: str, path: str, **kwargs: Any) -> Any: ...


class FineTuning:
    def __init__(self, client: _Sync) -> None:
        self._c = client

    def upload(self, data: str | Path | bytes, name: str | None = None) -> str:
        """Upload a JSONL file (checked line by line by the server); its ``file-…`` id."""
        content = data if isinstance(data, bytes) else Path(data).read_bytes()
        filename = name or (Path(data).name if not isinstance(data, bytes) else "train.jsonl")
        body = self._c._request(
            "POST", "/v1/files", files={"file": (filename, content)}, data={"purpose": "fine-tune"}
        )
        return str(body["id"])

    def create(
        self,
        model: str,
        data: str | Path | bytes,
        *,
        validation: str | Path | bytes | None = None,
        epochs: int | None = None,
        merge: bool = False,
        suffix: str | None = None,
        hyperparameters: Mapping[str, Any] | None = None,
    ) -> FineTuningJob:
        """Upload the data (a local path or bytes; a ``file-…`` id is used as is) and start a job."""
        training = data if isinstance(data, str) and data.startswith("file-") else self.upload(data)
        hp: dict[str, Any] = dict(hyperparameters or {})
        if epochs is not None:
            hp["n_epochs"] = epochs
        if merge:
            hp["merge"] = True
        body: dict[str, Any] = {"model": model, "training_file": training, "hyperparameters": hp}
        if validation is not None:
            is_id = isinstance(validation, str) and validation.startswith("file-")
            body["validation_file"] = validation if is_id else self.upload(validation)
        if suffix:
            body["suffix"] = suffix
        return FineTuningJob.from_json(self._c._request("POST", "/v1/fine_tuning/jobs", json=body))

    def list(self, limit: int = 20) -> builtins.list[FineTuningJob]:
        body = self._c._request("GET", "/v1/fine_tuning/jobs", params={"limit": limit})
        return [FineTuningJob.from_json(d) for d in body["data"]]

    def get(self, job_id: str) -> FineTuningJob:
        return FineTuningJob.from_json(self._c._request("GET", f"/v1/fine_tuning/jobs/{job_id}"))

    def cancel(self, job_id: str) -> FineTuningJob:
        return FineTuningJob.from_json(self._c._request("POST", f"/v1/fine_tuning/jobs/{job_id}/cancel"))

    def events(self, job_id: str, limit: int = 100) -> builtins.list[FineTuningEvent]:
        """Oldest first (the API pages newest first)."""
        body = self._c._request("GET", f"/v1/fine_tuning/jobs/{job_id}/events", params={"limit": limit})
        return [FineTuningEvent.from_json(d) for d in reversed(body["data"])]

    def checkpoints(self, job_id: str) -> builtins.list[dict[str, Any]]:
        body = self._c._request("GET", f"/v1/fine_tuning/jobs/{job_id}/checkpoints")
        return list(body["data"])

    def follow(self, job_id: str, *, interval: float = 1.0) -> Iterator[FineTuningEvent]:
        """Every event, oldest first, until the job ends."""
        seen = 0
        while True:
            job = self.get(job_id)
            for e in self.events(job_id):
                if e.number > seen:
                    seen = e.number
                    yield e
            if job.final:
                return
            time.sleep(interval)
