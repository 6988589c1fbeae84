"""The training manager: the OS's scheduler for fine-tuning jobs.

- **Create** validates everything before a row exists (base model trainable, datasets the
  tenant's, hyperparameters in range, the training extra installed), then queues the job.
- **Admission**: at most ``max_jobs`` run at once, oldest first, and only when the resource
  manager can reserve the job's RAM beside the resident models (:mod:`llmos.training.estimate`);
  otherwise the job waits queued, with an event saying why.
- **Running**: each job is its own OS process (:class:`~llmos.training.worker.JobProcess`); a
  thread follows its pipe and turns progress into events, checkpoints and the job's progress
  column. A crash fails the job with the reason and frees its reservation.
- **Yielding**: while inference requests wait in a model's queue, running jobs pause between
  optimizer steps (policy ``pause``) or train on one thread (``threads``), and resume after.
- **Results**: a succeeded job registers its adapter (or merged GGUF) as a new model version
  with its lineage; a cancelled or failed one registers nothing. The job's work folder
  (checkpoints, result files) is removed when the job ends, whatever the ending.
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import importlib.util
import logging
import re
import shutil
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

from llmos.config import TrainingConfig
from llmos.domain.data import Dataset
from llmos.domain.manifest import Manifest
from llmos.domain.training import Checkpoint, Job, JobEvent, JobSpec, Progress
from llmos.errors import Conflict, InvalidRequest, LLMOSError, MissingDependency
from llmos.storage.training import TrainingStore
from llmos.training.adapter_gguf import check_trainable
from llmos.training.estimate import training_bytes, training_threads
from llmos.training.messages import (
    CheckpointSaved,
    Control,
    Failed,
    Finished,
    Note,
    ProgressReport,
    TrainerMessage,
    TrainRequest,
)

log = logging.getLogger(__name__)

_SUFFIX = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,39})$")
CANCEL_GRACE_S = 10.0
"""How long a cancelled job's process may take to stop between steps before it is killed."""
YIELD_INTERVAL_S = 0.25


class ModelRegistry(Protocol):
    """What the manager needs of the registry."""

    def resolve(self, name: str) -> Manifest: ...

    def model_path(self, manifest: Manifest) -> Path: ...

    def register_derived(
        self, path: Path, name: str, *, base: Manifest, adapter: bool, lineage: dict[str, object]
    ) -> Manifest: ...

    def remove(self, name: str) -> object: ...


class JobHandle(Protocol):
    """A running job's process, as the manager sees it (:class:`~llmos.training.worker.JobProcess`)."""

    @property
    def pid(self) -> int | None: ...

    def send(self, control: Control) -> None: ...

    def recv(self) -> TrainerMessage:
        """The next message; raises EOFError when the process is gone."""
        ...

    def exit_detail(self) -> str: ...

    def stop(self, timeout: float) -> None: ...


StartJob = Callable[[TrainRequest], JobHandle]


class MemoryGate(Protocol):
    """The resource manager's side: RAM reservations beside the resident models."""

    def reserve(self, owner: str, nbytes: int) -> bool: ...

    def unreserve(self, owner: str) -> None: ...

    def free(self, device: str = "cpu") -> int: ...


class DatasetFiles(Protocol):
    """What the manager needs of the data subsystem's datasets (``DatasetService``)."""

    async def get(self, tenant: str, dataset_id: int) -> Dataset:
        """Raises NotFound (also for another tenant's)."""
        ...

    def locate(self, tenant: str, dataset_id: int) -> tuple[Dataset, Path]:
        """The dataset and the file of its bytes. Blocking; raises NotFound."""
        ...


UsageSink = Callable[[Job, int], None]
"""Books a finished job's trained tokens to its tenant (a usage row)."""


@dataclass
class _Running:
    job: Job
    handle: JobHandle
    memory: int
    threads: int
    cancelled: bool = False
    paused: bool = False
    yielding_threads: bool = False


@dataclass(frozen=True)
class RunningJob:
    """What ``llmos ps`` and ``/api/resources`` show of a running job."""

    id: str
    tenant: str
    model: str
    pid: int | None
    memory_bytes: int
    threads: int
    paused: bool
    progress: Progress | None


def start_process(request: TrainRequest) -> JobHandle:
    """The real :data:`StartJob`: a spawned process (imported late: it pulls in multiprocessing)."""
    from llmos.training.worker import JobProcess

    return JobProcess(request)


class TrainingManager:
    def __init__(
        self,
        config: TrainingConfig,
        *,
        store: TrainingStore,
        registry: ModelRegistry,
        datasets: DatasetFiles,
        memory: MemoryGate,
        work_root: Path,
        cores: int,
        inference_waiting: Callable[[], int] = lambda: 0,
        record_usage: UsageSink | None = None,
        start_job: StartJob | None = None,
        trainer_available: Callable[[], bool] | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.config = config
        self.store = store
        self.registry = registry
        self.datasets = datasets
        self.memory = memory
        self.work_root = work_root
        self.cores = max(1, cores)
        self._waiting = inference_waiting
        self._record_usage = record_usage
        self._start_job = start_job or start_process
        self._trainer_available = trainer_available or _trainer_installed
        self._clock = clock
        self._running: dict[str, _Running] = {}
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._yielder: asyncio.Task[None] | None = None
        self._followers: set[asyncio.Future[None]] = set()
        self._pump_lock = asyncio.Lock()
        self._blocked: dict[str, int] = {}
        """Queued jobs told they wait for memory, and the free bytes they were told of."""

    # ---- lifecycle -----------------------------------------------------------------------

    async def start(self) -> None:
        """Fail the jobs a previous server left running (their processes died with it), sweep
        their work folders, start the yield watcher and admit queued jobs."""
        self._loop = asyncio.get_running_loop()
        await asyncio.to_thread(self._recover)
        if self._yielder is None or self._yielder.done():
            self._yielder = asyncio.create_task(self._yield_loop(), name="llmos-training-yield")
        await self.pump()

    async def shutdown(self) -> None:
        """Stop every running job (they fail: the server stopped) and the watcher."""
        if self._yielder is not None:
            self._yielder.cancel()
            with contextlib.suppress(BaseException):
                await self._yielder
        with self._lock:
            running = list(self._running.values())
        for r in running:
            r.cancelled = True
            await asyncio.to_thread(
                self.store.set_state,
                r.job.id,
                "failed",
                error="the server shut down while the job ran; create it again",
                only_from=("running",),
            )
            r.handle.send(Control("cancel"))
        await asyncio.gather(
            *(asyncio.to_thread(r.handle.stop, 2.0) for r in running), return_exceptions=True
        )
        if self._followers:
            await asyncio.gather(*self._followers, return_exceptions=True)

    # ---- queries -------------------------------------------------------------------------

    async def get(self, tenant: str, job_id: str) -> Job:
        job = await asyncio.to_thread(self.store.get, tenant, job_id)
        return self._live(job)

    async def list(self, tenant: str, *, after: str | None = None, limit: int = 20) -> builtins.list[Job]:
        jobs = await asyncio.to_thread(self.store.list, tenant, after=after, limit=limit)
        return [self._live(j) for j in jobs]

    async def events(
        self, tenant: str, job_id: str, *, after: int | None = None, limit: int = 20
    ) -> builtins.list[JobEvent]:
        """The job's events, newest first. Raises NotFound."""
        return await asyncio.to_thread(self.store.events, tenant, job_id, after=after, limit=limit)

    async def events_since(self, tenant: str, job_id: str, since: int = 0) -> builtins.list[JobEvent]:
        """Events newer than ``since``, oldest first (a follower's next read). Raises NotFound."""
        return await asyncio.to_thread(self.store.events_since, tenant, job_id, since)

    async def checkpoints(self, tenant: str, job_id: str, *, limit: int = 20) -> builtins.list[Checkpoint]:
        return await asyncio.to_thread(self.store.checkpoints, tenant, job_id, limit=limit)

    def running(self) -> builtins.list[RunningJob]:
        with self._lock:
            return [
                RunningJob(
                    id=r.job.id,
                    tenant=r.job.tenant,
                    model=r.job.model,
                    pid=r.handle.pid,
                    memory_bytes=r.memory,
                    threads=1 if r.yielding_threads else r.threads,
                    paused=r.paused,
                    progress=r.job.progress,
                )
                for r in self._running.values()
            ]

    async def queued(self) -> builtins.list[Job]:
        """Every tenant's jobs waiting to start, oldest first."""
        return await asyncio.to_thread(self.store.in_states, "queued")

    def _live(self, job: Job) -> Job:
        with self._lock:
            r = self._running.get(job.id)
        return replace(job, paused=r.paused) if r is not None else job

    # ---- commands ------------------------------------------------------------------------

    async def create(self, tenant: str, spec: JobSpec) -> Job:
        """Validate and queue a job. Raises ModelNotFound, NotFound (dataset), InvalidRequest
        (not trainable, bad hyperparameters or suffix), MissingDependency; stores nothing then."""
        if not self._trainer_available():
            raise MissingDependency(
                "fine-tuning needs torch, transformers and peft; install them with: pip install 'llmos[train]'"
            )
        hp = spec.hyperparameters.checked()
        suffix = _check_suffix(spec.suffix)
        manifest = await asyncio.to_thread(self.registry.resolve, spec.model)
        _check_base(manifest, spec.model)
        await self.datasets.get(tenant, spec.training_dataset)
        if spec.validation_dataset is not None:
            await self.datasets.get(tenant, spec.validation_dataset)
        job = Job(
            id=f"ftjob-{uuid.uuid4().hex[:24]}",
            tenant=tenant,
            model=manifest.name,  # canonical (family:tag): result names and lineage derive from it
            base_digest=manifest.digest,
            training_dataset=spec.training_dataset,
            validation_dataset=spec.validation_dataset,
            hyperparameters=hp,
            suffix=suffix,
            state="queued",
            created_at=self._clock(),
        )
        stored = await asyncio.to_thread(self._add, job)
        await self.pump()
        return await self.get(tenant, stored.id)

    def _add(self, job: Job) -> Job:
        stored = self.store.add(job)
        self.store.add_event(job.id, f"Created fine-tuning job {job.id} on {job.model}")
        return stored

    async def cancel(self, tenant: str, job_id: str) -> Job:
        """Cancel a queued or running job; nothing of it is registered and its files go.
        Raises NotFound, Conflict (it already ended)."""
        job = await asyncio.to_thread(self.store.get, tenant, job_id)
        if job.final:
            raise Conflict(f"fine-tuning job {job_id} already {job.state}", param="fine_tuning_job_id")
        with self._lock:
            r = self._running.get(job_id)
            if r is not None:
                r.cancelled = True
        done = await asyncio.to_thread(
            self.store.set_state, job_id, "cancelled", only_from=("queued", "running")
        )
        if done is not None:
            await asyncio.to_thread(self.store.add_event, job_id, "Fine-tuning job cancelled")
        if r is not None:
            r.handle.send(Control("cancel"))
            # Between steps the trainer stops at once; loading or a long step gets a grace period.
            threading.Thread(target=r.handle.stop, args=(CANCEL_GRACE_S,), daemon=True).start()
        await self.pump()
        return await self.get(tenant, job_id)

    async def pump(self) -> None:
        """Start queued jobs while slots and memory allow (oldest first)."""
        async with self._pump_lock:
            await self._pump()

    async def _pump(self) -> None:
        while True:
            with self._lock:
                if len(self._running) >= self.config.max_jobs:
                    return
            queued = await asyncio.to_thread(self.store.in_states, "queued")
            if not queued:
                return
            job = queued[0]
            started = await self._try_start(job)
            if not started:
                return

    async def _try_start(self, job: Job) -> bool:
        try:
            manifest = await asyncio.to_thread(
                self.registry.resolve, f"{_family(job.model)}@sha256:{job.base_digest}"
            )
        except LLMOSError as exc:
            await self._fail_queued(job, f"the base model is gone: {exc.message}")
            return True
        need = training_bytes(manifest, job.hyperparameters)
        if not self.memory.reserve(job.id, need):
            free = max(0, self.memory.free("cpu"))
            if self._blocked.get(job.id) != free:
                self._blocked[job.id] = free
                await asyncio.to_thread(
                    self.store.add_event,
                    job.id,
                    f"Waiting for memory: the job needs {need >> 20} MiB, {free >> 20} MiB are free "
                    "beside the loaded models",
                    level="warn",
                )
            return False
        self._blocked.pop(job.id, None)
        try:
            request = await asyncio.to_thread(self._request, job, manifest)
            running = await asyncio.to_thread(self.store.set_state, job.id, "running", only_from=("queued",))
            if running is None:  # cancelled meanwhile
                self.memory.unreserve(job.id)
                self._remove_work(job.id)
                return True
            handle = await asyncio.to_thread(self._start_job, request)
        except BaseException as exc:
            self.memory.unreserve(job.id)
            self._remove_work(job.id)
            reason = exc.message if isinstance(exc, LLMOSError) else f"{type(exc).__name__}: {exc}"
            await asyncio.to_thread(
                self.store.set_state, job.id, "failed", error=reason, only_from=("queued", "running")
            )
            if not isinstance(exc, Exception):
                raise
            return True
        r = _Running(job=running, handle=handle, memory=need, threads=request.threads)
        with self._lock:
            self._running[job.id] = r
        await asyncio.to_thread(
            self.store.add_event,
            job.id,
            f"Fine-tuning job started: {request.threads} thread(s), {need >> 20} MiB reserved, pid {handle.pid}",
        )
        follower = asyncio.ensure_future(asyncio.to_thread(self._follow, r, manifest))
        self._followers.add(follower)
        follower.add_done_callback(self._followers.discard)
        return True

    async def _fail_queued(self, job: Job, reason: str) -> None:
        await asyncio.to_thread(self.store.set_state, job.id, "failed", error=reason, only_from=("queued",))

    def _request(self, job: Job, manifest: Manifest) -> TrainRequest:
        _, train = self.datasets.locate(job.tenant, job.training_dataset)
        valid = None
        if job.validation_dataset is not None:
            _, valid = self.datasets.locate(job.tenant, job.validation_dataset)
        work = self.work_root / job.id
        work.mkdir(parents=True, exist_ok=True)
        meta = manifest.metadata
        return TrainRequest(
            job_id=job.id,
            base_path=self.registry.model_path(manifest),
            architecture=manifest.architecture,
            chat_template=manifest.chat_template,
            bos_token=str(meta.get("bos_token", "")),
            eos_token=str(meta.get("eos_token", "")),
            train_path=train,
            valid_path=valid,
            hyperparameters=job.hyperparameters,
            work_dir=work,
            threads=training_threads(self.config.threads, self.cores),
            result_name=result_name(job),
        )

    # ---- following a job (on its own thread) ----------------------------------------------

    def _follow(self, r: _Running, base: Manifest) -> None:
        job = r.job
        outcome: Failed | Finished | None = None
        try:
            while True:
                try:
                    msg = r.handle.recv()
                except (EOFError, OSError):
                    break
                if isinstance(msg, Failed | Finished):
                    outcome = msg
                    break
                self._record(r, msg)
            if isinstance(outcome, Finished) and not r.cancelled:
                self._succeed(r, base, outcome)
            elif not r.cancelled:
                reason = (
                    outcome.reason
                    if isinstance(outcome, Failed)
                    else (f"the training process died ({r.handle.exit_detail()})")
                )
                self.store.set_state(job.id, "failed", error=reason, only_from=("running",))
                self.store.add_event(job.id, f"Fine-tuning job failed: {reason}", level="error")
        except Exception as exc:  # the manager's own failure (database, registry) fails the job
            log.exception("following fine-tuning job %s failed", job.id)
            with contextlib.suppress(Exception):
                self.store.set_state(
                    job.id, "failed", error=f"{type(exc).__name__}: {exc}", only_from=("running",)
                )
        finally:
            r.handle.stop(2.0)
            self._remove_work(job.id)
            self.memory.unreserve(job.id)
            with self._lock:
                self._running.pop(job.id, None)
            if self._loop is not None and not self._loop.is_closed():
                with contextlib.suppress(RuntimeError):
                    asyncio.run_coroutine_threadsafe(self.pump(), self._loop)

    def _record(self, r: _Running, msg: TrainerMessage) -> None:
        job = r.job
        if isinstance(msg, Note):
            self.store.add_event(job.id, msg.message, level="warn" if msg.level == "warn" else "info")
        elif isinstance(msg, ProgressReport):
            p = msg.progress
            r.job = replace(r.job, progress=p, trained_tokens=p.trained_tokens)
            self.store.set_progress(job.id, p)
            self.store.add_event(job.id, describe(p), type="metrics", data=p.to_dict())
        elif isinstance(msg, CheckpointSaved):
            self.store.add_checkpoint(
                Checkpoint(
                    id=f"ftckpt-{uuid.uuid4().hex[:24]}",
                    job_id=job.id,
                    step=msg.step,
                    created_at=self._clock(),
                    metrics=msg.metrics,
                )
            )
            self.store.add_event(job.id, f"Checkpoint saved at step {msg.step}", data=msg.metrics)

    def _succeed(self, r: _Running, base: Manifest, done: Finished) -> None:
        job = r.job
        name = result_name(job)
        lineage = {
            "job_id": job.id,
            "base_model": base.name,
            "base_digest": base.digest,
            "training_dataset": job.training_dataset,
            "training_dataset_digest": self.datasets.locate(job.tenant, job.training_dataset)[0].digest,
            "validation_dataset": job.validation_dataset,
            "validation_dataset_digest": (
                None
                if job.validation_dataset is None
                else self.datasets.locate(job.tenant, job.validation_dataset)[0].digest
            ),
            "hyperparameters": job.hyperparameters.to_dict(),
            "metrics": done.metrics,
            "merged": done.merged,
        }
        stored = self.registry.register_derived(
            done.path, name, base=base, adapter=not done.merged, lineage=lineage
        )
        finished = self.store.set_state(job.id, "succeeded", result_model=stored.name, only_from=("running",))
        if finished is None:  # cancelled while registering: take the result back
            with contextlib.suppress(LLMOSError):
                self.registry.remove(f"{_family(stored.name)}@sha256:{stored.digest}")
            return
        self.store.add_event(job.id, f"New fine-tuned model created: {stored.name}")
        self.store.add_event(job.id, "The job has successfully completed")
        if self._record_usage is not None:
            tokens = int(done.metrics.get("trained_tokens") or 0)
            with contextlib.suppress(Exception):
                self._record_usage(finished, tokens)

    # ---- yielding to inference -----------------------------------------------------------

    async def _yield_loop(self) -> None:
        while True:
            await asyncio.sleep(YIELD_INTERVAL_S)
            with contextlib.suppress(Exception):
                await self.apply_yield(self._waiting())

    async def apply_yield(self, waiting: int) -> None:
        """Pause (or slow) running jobs while ``waiting`` inference requests are queued; resume
        them when none are."""
        policy = self.config.yield_policy
        if policy == "none":
            return
        with self._lock:
            running = list(self._running.values())
        for r in running:
            if r.cancelled:
                continue
            if policy == "pause" and bool(waiting) != r.paused:
                r.paused = bool(waiting)
                r.handle.send(Control("pause" if r.paused else "resume"))
                note = (
                    f"Paused: {waiting} inference request(s) queued"
                    if r.paused
                    else "Resumed: no inference queued"
                )
                await asyncio.to_thread(self.store.add_event, r.job.id, note)
            elif policy == "threads" and bool(waiting) != r.yielding_threads:
                r.yielding_threads = bool(waiting)
                r.handle.send(Control("threads", 1 if r.yielding_threads else r.threads))

    # ---- housekeeping --------------------------------------------------------------------

    def _recover(self) -> None:
        for job in self.store.in_states("running"):
            self.store.set_state(
                job.id,
                "failed",
                error="the server stopped while the job ran; create it again",
                only_from=("running",),
            )
        if self.work_root.is_dir():
            for folder in self.work_root.iterdir():
                shutil.rmtree(folder, ignore_errors=True)

    def _remove_work(self, job_id: str) -> None:
        shutil.rmtree(self.work_root / job_id, ignore_errors=True)


def describe(p: Progress) -> str:
    """The metrics event's message: ``Step 3/12: training loss=1.234, validation loss=…``."""
    parts = [f"Step {p.step}/{p.total_steps}"]
    details = []
    if p.train_loss is not None:
        details.append(f"training loss={p.train_loss:.4f}")
    if p.valid_loss is not None:
        details.append(f"validation loss={p.valid_loss:.4f}")
    if p.tokens_per_second is not None:
        details.append(f"{p.tokens_per_second:.0f} tok/s")
    return parts[0] + (": " + ", ".join(details) if details else "")


def result_name(job: Job) -> str:
    """``family:tag-ft-<suffix or job id>`` (OpenAI's ``ft:…`` names do not parse as ours)."""
    family, _, tag = job.model.partition(":")
    label = job.suffix or job.id.removeprefix("ftjob-")[:12]
    return f"{family}:{tag or 'latest'}-ft-{label}"[: len(family) + 1 + 127]


def _family(name: str) -> str:
    """The family of a registered (canonical) name: ``family:tag`` or ``family@sha256:…``."""
    return re.split(r"[:@]", name, maxsplit=1)[0]


def _check_suffix(suffix: str | None) -> str | None:
    if suffix is None or suffix == "":
        return None
    if not _SUFFIX.match(suffix):
        raise InvalidRequest(
            f"suffix {suffix!r} must be 1-40 lowercase letters, digits and '-', starting with a letter or digit",
            param="suffix",
        )
    return suffix


def _check_base(manifest: Manifest, name: str) -> None:
    if manifest.format != "gguf":
        raise InvalidRequest(
            f"model {name!r} is a {manifest.format} model; fine-tuning trains GGUF chat models", param="model"
        )
    if "adapter_of" in manifest.metadata:
        raise InvalidRequest(
            f"model {name!r} is a fine-tuned adapter; train its base, or a merged fine-tune", param="model"
        )
    if not manifest.chat_template:
        raise InvalidRequest(f"model {name!r} has no chat template to train with", param="model")
    check_trainable(manifest.architecture)


def _trainer_installed() -> bool:
    return all(importlib.util.find_spec(m) is not None for m in ("torch", "transformers", "peft"))
