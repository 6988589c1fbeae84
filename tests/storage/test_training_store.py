"""Fine-tuning jobs, events and checkpoints on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from llmos.domain.training import Checkpoint, Hyperparameters, Job, Progress
from llmos.errors import NotFound
from llmos.storage.db import Database
from llmos.storage.training import TrainingStore


def _job(job_id: str, tenant: str = "acme", second: int = 0) -> Job:
    return Job(
        id=job_id,
        tenant=tenant,
        model="smollm2:135m",
        base_digest="a" * 64,
        training_dataset=1,
        validation_dataset=None,
        hyperparameters=Hyperparameters(epochs=2, target_modules=("q_proj", "v_proj")),
        suffix="x",
        state="queued",
        created_at=datetime(2026, 12, 2, 4, 0, second, tzinfo=UTC),
    )


def test_jobs_round_trip_and_move_through_states(database: Database) -> None:
    store = TrainingStore(database)
    stored = store.add(_job("ftjob-1"))
    assert stored.hyperparameters.target_modules == ("q_proj", "v_proj")
    assert store.set_state("ftjob-1", "succeeded", only_from=("running",)) is None
    running = store.set_state("ftjob-1", "running", only_from=("queued",))
    assert running is not None and running.started_at is not None
    store.set_progress(
        "ftjob-1", Progress(step=3, total_steps=10, epoch=0.3, train_loss=1.5, trained_tokens=99)
    )
    done = store.set_state("ftjob-1", "succeeded", result_model="smollm2:135m-ft-x")
    assert done is not None and done.finished_at is not None
    got = store.get("acme", "ftjob-1")
    assert (got.state, got.result_model, got.trained_tokens) == ("succeeded", "smollm2:135m-ft-x", 99)
    assert got.progress is not None and got.progress.train_loss == 1.5


def test_another_tenant_sees_nothing(database: Database) -> None:
    store = TrainingStore(database)
    store.add(_job("ftjob-1"))
    with pytest.raises(NotFound):
        store.get("other", "ftjob-1")
    with pytest.raises(NotFound):
        store.events("other", "ftjob-1")
    with pytest.raises(NotFound):
        store.checkpoints("other", "ftjob-1")
    assert store.list("other") == []


def test_lists_page_newest_first(database: Database) -> None:
    store = TrainingStore(database)
    for i in range(5):
        store.add(_job(f"ftjob-{i}", second=i))
    first = store.list("acme", limit=2)
    assert [j.id for j in first] == ["ftjob-4", "ftjob-3"]
    assert [j.id for j in store.list("acme", after="ftjob-3", limit=10)] == ["ftjob-2", "ftjob-1", "ftjob-0"]
    assert [j.id for j in store.in_states("queued")][:2] == ["ftjob-0", "ftjob-1"]


def test_events_and_checkpoints(database: Database) -> None:
    store = TrainingStore(database)
    store.add(_job("ftjob-1"))
    ids = [store.add_event("ftjob-1", f"e{i}", type="metrics", data={"step": i}).id for i in range(3)]
    assert [e.message for e in store.events("acme", "ftjob-1")] == ["e2", "e1", "e0"]
    assert [e.message for e in store.events("acme", "ftjob-1", after=ids[2])] == ["e1", "e0"]
    assert [e.data["step"] for e in store.events_since("acme", "ftjob-1", ids[0])] == [1, 2]
    now = datetime.now(UTC)
    for step in (5, 10):
        store.add_checkpoint(
            Checkpoint(
                id=f"ftckpt-{step}", job_id="ftjob-1", step=step, created_at=now, metrics={"valid_loss": 1.0}
            )
        )
    assert [c.step for c in store.checkpoints("acme", "ftjob-1")] == [10, 5]
    store.delete("ftjob-1")
    with pytest.raises(NotFound):
        store.get(None, "ftjob-1")
