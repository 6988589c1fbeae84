"""The training manager over a real store, registry and datasets, with scripted job processes."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from llmos.config import TrainingConfig, load_config
from llmos.data.datasets import DatasetService
from llmos.data.tokens import ApproxTokenizer
from llmos.domain.training import Hyperparameters, Job, JobSpec
from llmos.errors import Conflict, InvalidRequest, MissingDependency, ModelNotFound, NotFound
from llmos.registry.registry import Registry
from llmos.storage.blobs import BlobStore
from llmos.storage.data_datasets import DatasetStore
from llmos.storage.db import Database, open_database
from llmos.storage.manifests import ManifestRepository
from llmos.storage.training import TrainingStore
from llmos.training.manager import TrainingManager
from polling import until

from .fakes import FakeStarter, Memory, crash, succeed, wait_for_cancel
from .helpers import write_base

pytestmark = pytest.mark.anyio

GIB = 1 << 30
LINE = json.dumps(
    {
        "messages": [
            {"role": "user", "content": "Capital of Zorbia?"},
            {"role": "assistant", "content": "Quellport."},
        ]
    }
)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def db(llmos_home: Path) -> Iterator[Database]:
    database = open_database(load_config())
    yield database
    database.dispose()


@pytest.fixture
def registry(llmos_home: Path, db: Database) -> Registry:
    reg = Registry(ManifestRepository(db), BlobStore(llmos_home / "blobs", llmos_home / "tmp"))
    reg.import_file(write_base(llmos_home / "base.gguf"), "tiny:base")
    return reg


@pytest.fixture
def datasets(llmos_home: Path, db: Database) -> DatasetService:
    return DatasetService(
        DatasetStore(db), BlobStore(llmos_home / "blobs", llmos_home / "tmp"), ApproxTokenizer()
    )


class Rig:
    def __init__(self, home: Path, db: Database, registry: Registry, datasets: DatasetService) -> None:
        self.home = home
        self.store = TrainingStore(db)
        self.registry = registry
        self.datasets = datasets
        self.memory = Memory(64 * GIB)
        self.waiting = 0
        self.usage: list[tuple[str, int]] = []
        self.starter = FakeStarter(succeed)
        self.started: list[TrainingManager] = []

    def manager(self, **config: object) -> TrainingManager:
        return TrainingManager(
            TrainingConfig(**config),  # type: ignore[arg-type]
            store=self.store,
            registry=self.registry,
            datasets=self.datasets,
            memory=self.memory,
            work_root=self.home / "training",
            cores=2,
            inference_waiting=lambda: self.waiting,
            record_usage=lambda job, tokens: self.usage.append((job.id, tokens)),
            start_job=lambda request: self.starter(request),
            trainer_available=lambda: True,
        )

    async def start(self, **config: object) -> TrainingManager:
        """A started manager (shut down when the test ends)."""
        manager = self.manager(**config)
        await manager.start()
        self.started.append(manager)
        return manager

    async def create(self, manager: TrainingManager, *, suffix: str | None = None) -> Job:
        """acme's job on tiny:base over a fresh one-line dataset."""
        ds = await _dataset(self)
        return await manager.create("acme", JobSpec(model="tiny:base", training_dataset=ds, suffix=suffix))


@pytest.fixture
async def rig(
    llmos_home: Path, db: Database, registry: Registry, datasets: DatasetService
) -> AsyncIterator[Rig]:
    r = Rig(llmos_home, db, registry, datasets)
    yield r
    for manager in r.started:
        await manager.shutdown()


async def _dataset(rig: Rig, tenant: str = "acme") -> int:
    return (await rig.datasets.upload(tenant, "train.jsonl", (LINE + "\n").encode())).id


async def _until_final(manager: TrainingManager, tenant: str, job_id: str) -> Job:
    async def final() -> Job | None:
        job = await manager.get(tenant, job_id)
        return job if job.final and not manager.running() else None

    return await until(final, within_s=10.0, what=f"job {job_id} to end", every_s=0.01)


async def test_a_job_runs_and_registers_an_adapter_with_lineage(rig: Rig) -> None:
    manager = await rig.start()
    job = await rig.create(manager, suffix="zorbia")
    ds = job.training_dataset
    done = await _until_final(manager, "acme", job.id)
    assert done.state == "succeeded", done.error
    assert done.result_model == "tiny:base-ft-zorbia"
    model = rig.registry.resolve("tiny:base-ft-zorbia")
    base = rig.registry.resolve("tiny:base")
    assert model.parent == base.digest
    assert model.metadata["adapter_of"] == base.digest
    lineage = model.metadata["lineage"]
    assert lineage["job_id"] == job.id and lineage["base_digest"] == base.digest
    assert lineage["training_dataset_digest"] == (await rig.datasets.get("acme", ds)).digest
    assert lineage["hyperparameters"]["epochs"] == Hyperparameters().epochs
    assert lineage["metrics"]["valid_loss"] == 1.5
    assert [c.step for c in await manager.checkpoints("acme", job.id)] == [2]
    events = [e.message for e in await manager.events("acme", job.id, limit=50)]
    assert events[0] == "The job has successfully completed"
    assert any(m.startswith("Step 2/2: training loss=1.0000") for m in events)
    assert rig.usage == [(job.id, 20)]
    assert rig.memory.reserved == {}
    assert not (rig.home / "training" / job.id).exists()
    # the base an adapter depends on cannot be removed
    with pytest.raises(Conflict, match="tiny:base-ft-zorbia"):
        rig.registry.remove("tiny:base")
    rig.registry.remove("tiny:base-ft-zorbia")
    rig.registry.remove("tiny:base")


async def test_cancel_while_running_registers_nothing_and_leaves_no_files(rig: Rig) -> None:
    rig.starter.script = wait_for_cancel
    manager = await rig.start()
    job = await rig.create(manager)

    async def progressed() -> bool:
        return (await manager.get("acme", job.id)).progress is not None

    await until(progressed, within_s=10.0, what="the job's first progress report", every_s=0.01)
    assert (rig.home / "training" / job.id / "checkpoint-1.safetensors").exists()
    with pytest.raises(NotFound):
        await manager.cancel("other", job.id)
    cancelled = await manager.cancel("acme", job.id)
    assert cancelled.state == "cancelled"
    done = await _until_final(manager, "acme", job.id)
    assert done.state == "cancelled"
    assert [m.name for m in rig.registry.list()] == ["tiny:base"]
    assert not (rig.home / "training" / job.id).exists()
    assert rig.memory.reserved == {}
    with pytest.raises(Conflict, match="already cancelled"):
        await manager.cancel("acme", job.id)


async def test_a_crashed_process_fails_the_job_with_its_reason(rig: Rig) -> None:
    rig.starter.script = crash
    manager = await rig.start()
    job = await rig.create(manager)
    done = await _until_final(manager, "acme", job.id)
    assert done.state == "failed"
    assert done.error == "the training process died (killed by SIGKILL)"
    assert rig.memory.reserved == {}
    assert [m.name for m in rig.registry.list()] == ["tiny:base"]


async def test_a_job_waits_queued_until_memory_is_free(rig: Rig) -> None:
    rig.memory.capacity = 1 << 20
    manager = await rig.start()
    job = await rig.create(manager)
    assert job.state == "queued"
    [event] = [e for e in await manager.events("acme", job.id) if e.level == "warn"]
    assert event.message.startswith("Waiting for memory: the job needs")
    rig.memory.capacity = 64 * GIB
    await manager.pump()
    assert (await _until_final(manager, "acme", job.id)).state == "succeeded"


async def test_one_job_at_a_time_by_default_and_a_queued_job_cancels_at_once(rig: Rig) -> None:
    rig.starter.script = wait_for_cancel
    manager = await rig.start()
    first = await rig.create(manager)
    second = await rig.create(manager)
    assert (first.state, second.state) == ("running", "queued")
    assert (await manager.cancel("acme", second.id)).state == "cancelled"
    await manager.cancel("acme", first.id)
    await _until_final(manager, "acme", first.id)
    assert len(rig.starter.jobs) == 1


async def test_training_pauses_while_inference_is_queued(rig: Rig) -> None:
    rig.starter.script = wait_for_cancel
    manager = await rig.start()
    job = await rig.create(manager)
    await manager.apply_yield(3)
    assert (await manager.get("acme", job.id)).paused
    assert manager.running()[0].paused
    await manager.apply_yield(0)
    assert not (await manager.get("acme", job.id)).paused
    assert [c.command for c in rig.starter.jobs[0].sent] == ["pause", "resume"]
    messages = [e.message for e in await manager.events("acme", job.id)]
    assert "Paused: 3 inference request(s) queued" in messages
    await manager.cancel("acme", job.id)
    await _until_final(manager, "acme", job.id)


async def test_the_threads_policy_drops_to_one_thread(rig: Rig) -> None:
    rig.starter.script = wait_for_cancel
    manager = await rig.start(yield_policy="threads", threads=2)
    job = await rig.create(manager)
    await manager.apply_yield(1)
    assert manager.running()[0].threads == 1
    await manager.apply_yield(0)
    assert [(c.command, c.value) for c in rig.starter.jobs[0].sent] == [("threads", 1), ("threads", 2)]
    await manager.cancel("acme", job.id)
    await _until_final(manager, "acme", job.id)


async def test_jobs_left_running_by_a_dead_server_fail_at_start(rig: Rig) -> None:
    rig.starter.script = wait_for_cancel
    first = await rig.start()
    job = await rig.create(first)
    rig.store.set_state(job.id, "running")  # as if the server had died mid-job
    second = await rig.start()
    found = await second.get("acme", job.id)
    assert found.state == "failed" and "server stopped" in (found.error or "")


@pytest.mark.parametrize(
    ("spec", "error", "match"),
    [
        (JobSpec(model="nope:1", training_dataset=1), ModelNotFound, "not found"),
        (JobSpec(model="tiny:base", training_dataset=999), NotFound, "dataset 999"),
        (JobSpec(model="tiny:base", training_dataset=1, suffix="Bad Suffix"), InvalidRequest, "suffix"),
        (
            JobSpec(model="tiny:base", training_dataset=1, hyperparameters=Hyperparameters(epochs=0)),
            InvalidRequest,
            "epochs",
        ),
    ],
)
async def test_bad_input_stores_nothing(rig: Rig, spec: JobSpec, error: type[Exception], match: str) -> None:
    await _dataset(rig)
    manager = await rig.start()
    with pytest.raises(error, match=match):
        await manager.create("acme", spec)
    assert await manager.list("acme") == []
    assert rig.starter.jobs == []


async def test_another_tenants_dataset_and_jobs_are_not_found(rig: Rig) -> None:
    manager = await rig.start()
    ds = await _dataset(rig, "acme")
    with pytest.raises(NotFound):
        await manager.create("other", JobSpec(model="tiny:base", training_dataset=ds))
    job = await manager.create("acme", JobSpec(model="tiny:base", training_dataset=ds))
    with pytest.raises(NotFound):
        await manager.get("other", job.id)
    with pytest.raises(NotFound):
        await manager.events("other", job.id)
    assert await manager.list("other") == []
    await _until_final(manager, "acme", job.id)


async def test_untrainable_bases_are_refused(rig: Rig, llmos_home: Path) -> None:
    rig.registry.import_file(write_base(llmos_home / "g.gguf", arch="gemma3", seed=1), "tiny:gemma")
    manager = await rig.start()
    with pytest.raises(InvalidRequest, match="not trainable"):
        await manager.create("acme", JobSpec(model="tiny:gemma", training_dataset=await _dataset(rig)))


async def test_without_the_training_extra_creating_says_what_to_install(rig: Rig) -> None:
    manager = rig.manager()
    manager._trainer_available = lambda: False
    with pytest.raises(MissingDependency, match=r"pip install 'llmos\[train\]'"):
        await manager.create("acme", JobSpec(model="tiny:base", training_dataset=await _dataset(rig)))
