"""A scripted stand-in for a job's process (the manager's :class:`JobHandle`)."""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable

import numpy as np

from llmos.domain.training import Progress
from llmos.training.adapter_gguf import HeadCounts, gguf_pairs, write_adapter
from llmos.training.messages import (
    CheckpointSaved,
    Control,
    Failed,
    Finished,
    ProgressReport,
    TrainerMessage,
    TrainRequest,
)

from .helpers import N_EMBD, N_HEAD, N_HEAD_KV

Script = Callable[["FakeJob"], None]


def succeed(job: FakeJob) -> None:
    """Two steps, a checkpoint, then a real adapter file for the tiny base."""
    for step in (1, 2):
        job.emit(
            ProgressReport(
                Progress(
                    step=step, total_steps=2, epoch=step / 2, train_loss=2.0 / step, trained_tokens=10 * step
                )
            )
        )
    job.emit(CheckpointSaved(step=2, metrics={"epoch": 1, "train_loss": 1.0, "valid_loss": 1.5}))
    rng = np.random.default_rng(0)
    state = {
        "base_model.model.model.layers.0.self_attn.v_proj.lora_A.weight": rng.random(
            (2, N_EMBD), dtype=np.float32
        ),
        "base_model.model.model.layers.0.self_attn.v_proj.lora_B.weight": rng.random(
            (N_EMBD // N_HEAD * N_HEAD_KV, 2), dtype=np.float32
        ),
    }
    path = job.request.work_dir / "adapter.gguf"
    write_adapter(
        path,
        gguf_pairs(state, "llama", HeadCounts(N_HEAD, N_HEAD_KV)),
        architecture="llama",
        alpha=4,
        name="x",
    )
    job.emit(
        Finished(
            path=path, merged=False, metrics={"train_loss": 1.0, "valid_loss": 1.5, "trained_tokens": 20}
        )
    )


def wait_for_cancel(job: FakeJob) -> None:
    """Report one step, then train until cancelled (as the real trainer does between steps)."""
    (job.request.work_dir / "checkpoint-1.safetensors").write_bytes(b"partial")
    job.emit(ProgressReport(Progress(step=1, total_steps=100, epoch=0.01, train_loss=3.0)))
    while True:
        control = job.controls.get()
        if control.command == "cancel":
            job.emit(Failed("cancelled"))
            return


def crash(job: FakeJob) -> None:
    """Die without a word (a segfault or an OOM kill)."""
    job.emit(ProgressReport(Progress(step=1, total_steps=10, epoch=0.1, train_loss=3.0)))


class FakeJob:
    def __init__(self, request: TrainRequest, script: Script) -> None:
        self.request = request
        self.controls: queue.Queue[Control] = queue.Queue()
        self.sent: list[Control] = []
        self._out: queue.Queue[TrainerMessage | None] = queue.Queue()
        self._thread = threading.Thread(target=self._run, args=(script,), daemon=True)
        self._thread.start()

    def _run(self, script: Script) -> None:
        try:
            script(self)
        finally:
            self._out.put(None)

    def emit(self, message: TrainerMessage) -> None:
        self._out.put(message)

    @property
    def pid(self) -> int | None:
        return 4242

    def send(self, control: Control) -> None:
        self.sent.append(control)
        self.controls.put(control)

    def recv(self) -> TrainerMessage:
        msg = self._out.get()
        if msg is None:
            raise EOFError
        return msg

    def exit_detail(self) -> str:
        return "killed by SIGKILL"

    def stop(self, timeout: float) -> None:
        self.controls.put(Control("cancel"))
        self._thread.join(timeout)


class FakeStarter:
    """The manager's ``start_job``: runs ``script`` for each job; keeps the handles."""

    def __init__(self, script: Script) -> None:
        self.script = script
        self.jobs: list[FakeJob] = []

    def __call__(self, request: TrainRequest) -> FakeJob:
        job = FakeJob(request, self.script)
        self.jobs.append(job)
        return job


class Memory:
    """The resource manager's reservations, with a fixed free amount."""

    def __init__(self, free: int) -> None:
        self.capacity = free
        self.reserved: dict[str, int] = {}

    def free(self, device: str = "cpu") -> int:
        return self.capacity - sum(self.reserved.values())

    def reserve(self, owner: str, nbytes: int) -> bool:
        if nbytes > self.free():
            return False
        self.reserved[owner] = nbytes
        return True

    def unreserve(self, owner: str) -> None:
        self.reserved.pop(owner, None)
