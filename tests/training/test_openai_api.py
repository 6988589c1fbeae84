"""OpenAI's files and fine-tuning API, driven by the official ``openai`` client over the app
(fake engines, a real registry and database, scripted job processes)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from fastapi import FastAPI

import llmos.training.manager as manager_module
from kernel.fakes import inventory  # tests/ is on sys.path
from llmos.config import load_config
from llmos.engine.fake import FakeEngine
from llmos.kernel import build_kernel
from llmos.registry.registry import Registry
from llmos.sdk import AsyncClient, NotFoundError
from llmos.server.app import create_app
from llmos.storage.blobs import BlobStore
from llmos.storage.db import open_database
from llmos.storage.manifests import ManifestRepository

from .fakes import FakeStarter, succeed, wait_for_cancel
from .helpers import write_base

pytestmark = pytest.mark.anyio

GOOD = "\n".join(
    json.dumps({"messages": [{"role": "user", "content": q}, {"role": "assistant", "content": "Quellport."}]})
    for q in ("Capital of Zorbia?", "Zorbia's capital?")
).encode()


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
async def app(llmos_home: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[FastAPI]:
    monkeypatch.setattr(manager_module, "start_process", FakeStarter(succeed))
    monkeypatch.setattr(manager_module, "_trainer_installed", lambda: True)
    config = load_config()
    db = open_database(config)
    registry = Registry(ManifestRepository(db), BlobStore(llmos_home / "blobs", llmos_home / "tmp"))
    registry.import_file(write_base(llmos_home / "base.gguf"), "tiny:base")
    kernel = build_kernel(
        config,
        registry=registry,
        engine_factory=lambda backend: FakeEngine(),
        inventory=inventory(),
        database=db,
    )
    app = create_app(kernel)
    lifespan = app.router.lifespan_context(app)
    await lifespan.__aenter__()
    yield app
    await lifespan.__aexit__(None, None, None)
    db.dispose()


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[openai.AsyncOpenAI]:
    http = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test", timeout=30)
    yield openai.AsyncOpenAI(base_url="http://test/v1", api_key="none", http_client=http, max_retries=0)
    await http.aclose()


async def _finished(client: openai.AsyncOpenAI, job_id: str) -> Any:
    for _ in range(500):
        job = await client.fine_tuning.jobs.retrieve(job_id)
        if job.status in ("succeeded", "failed", "cancelled"):
            return job
        await asyncio.sleep(0.01)
    raise AssertionError("the job did not finish")


async def test_the_whole_flow_with_the_official_client(client: openai.AsyncOpenAI) -> None:
    f = await client.files.create(file=("train.jsonl", GOOD), purpose="fine-tune")
    assert f.id.startswith("file-") and f.purpose == "fine-tune" and f.bytes == len(GOOD)
    assert [x.id for x in (await client.files.list()).data] == [f.id]
    job = await client.fine_tuning.jobs.create(
        model="tiny:base", training_file=f.id, suffix="zorbia", hyperparameters={"n_epochs": 2}
    )
    assert job.status in ("queued", "running") and job.hyperparameters.n_epochs == 2
    done = await _finished(client, job.id)
    assert done.status == "succeeded"
    assert done.fine_tuned_model == "tiny:base-ft-zorbia"
    assert done.trained_tokens == 20
    events = (await client.fine_tuning.jobs.list_events(job.id, limit=100)).data
    assert events[0].message == "The job has successfully completed"
    metrics = [e for e in events if e.type == "metrics"]
    assert metrics and metrics[0].data["train_loss"] == 1.0
    [ckpt] = (await client.fine_tuning.jobs.checkpoints.list(job.id)).data
    assert ckpt.step_number == 2 and ckpt.metrics.valid_loss == 1.5
    assert [j.id for j in (await client.fine_tuning.jobs.list()).data] == [job.id]
    with pytest.raises(openai.ConflictError, match="already succeeded"):
        await client.fine_tuning.jobs.cancel(job.id)
    # the result is a model the OpenAI models list shows
    assert "tiny:base-ft-zorbia" in [m.id async for m in client.models.list()]


async def test_bad_input_is_a_clear_4xx_and_stores_nothing(client: openai.AsyncOpenAI) -> None:
    bad = GOOD + b'\n{"messages": [oops\n'
    with pytest.raises(openai.BadRequestError, match="line 3: invalid JSON"):
        await client.files.create(file=("bad.jsonl", bad), purpose="fine-tune")
    no_answer = json.dumps({"messages": [{"role": "user", "content": "hi"}]}).encode()
    with pytest.raises(openai.BadRequestError, match="no assistant message"):
        await client.files.create(file=("q.jsonl", no_answer), purpose="fine-tune")
    with pytest.raises(openai.BadRequestError, match="purpose"):
        await client.files.create(file=("a.jsonl", GOOD), purpose="assistants")
    assert (await client.files.list()).data == []
    f = await client.files.create(file=("train.jsonl", GOOD), purpose="fine-tune")
    with pytest.raises(openai.BadRequestError, match="epochs"):
        await client.fine_tuning.jobs.create(
            model="tiny:base", training_file=f.id, hyperparameters={"n_epochs": 0}
        )
    with pytest.raises(openai.NotFoundError):
        await client.fine_tuning.jobs.create(model="nope:1", training_file=f.id)
    with pytest.raises(openai.NotFoundError):
        await client.fine_tuning.jobs.create(model="tiny:base", training_file="file-999")
    with pytest.raises(openai.NotFoundError):
        await client.fine_tuning.jobs.retrieve("ftjob-missing")
    assert (await client.fine_tuning.jobs.list()).data == []


async def test_the_sdk_follows_a_job_over_the_servers_event_stream(app: FastAPI) -> None:
    async with AsyncClient("http://test", transport=httpx.ASGITransport(app=app)) as sdk:
        job = await sdk.fine_tuning.create("tiny:base", GOOD, validation=GOOD, suffix="follow")
        followed = [e async for e in sdk.fine_tuning.follow(job.id)]
        done = await sdk.fine_tuning.get(job.id)
        with pytest.raises(NotFoundError):
            [e async for e in sdk.fine_tuning.follow("ftjob-missing")]
    numbers = [e.number for e in followed]
    assert numbers == sorted(numbers) and len(set(numbers)) == len(numbers)
    assert followed[0].message.startswith("Created fine-tuning job")
    assert followed[-1].message == "The job has successfully completed"
    assert [e.data["step"] for e in followed if e.type == "metrics"] == [1, 2]
    assert done.status == "succeeded" and done.fine_tuned_model == "tiny:base-ft-follow"


async def test_a_fine_tune_is_served_on_its_base_models_core(
    client: openai.AsyncOpenAI, app: FastAPI
) -> None:
    f = await client.files.create(file=("train.jsonl", GOOD), purpose="fine-tune")
    job = await client.fine_tuning.jobs.create(model="tiny:base", training_file=f.id, suffix="served")
    assert (await _finished(client, job.id)).status == "succeeded"
    ask = [{"role": "user", "content": "Capital of Zorbia?"}]
    tuned = await client.chat.completions.create(model="tiny:base-ft-served", messages=ask, temperature=0)
    base = await client.chat.completions.create(model="tiny:base", messages=ask, temperature=0)
    assert tuned.model == "tiny:base-ft-served" and base.model == "tiny:base"
    assert tuned.choices[0].message.content != base.choices[0].message.content
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as http:
        resident = (await http.get("/api/ps")).json()["models"]
        shown = (await http.get("/api/models/tiny:base-ft-served")).json()
        base_digest = (await http.get("/api/models/tiny:base")).json()["digest"]
    assert [m["name"] for m in resident] == ["tiny:base"]  # one core serves both
    lineage = shown["lineage"]
    assert shown["adapter_of"] == lineage["base_digest"] == base_digest
    assert lineage["job_id"] == job.id and lineage["base_model"] == "tiny:base" and not lineage["merged"]
    assert len(lineage["training_dataset_digest"]) == 64 and lineage["validation_dataset_digest"] is None
    assert lineage["hyperparameters"]["epochs"] >= 1
    assert lineage["metrics"] == {"train_loss": 1.0, "valid_loss": 1.5, "trained_tokens": 20}


async def test_resources_show_running_and_queued_jobs_and_the_yield_policy(
    client: openai.AsyncOpenAI, app: FastAPI, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(manager_module, "start_process", FakeStarter(wait_for_cancel))
    f = await client.files.create(file=("train.jsonl", GOOD), purpose="fine-tune")
    first = await client.fine_tuning.jobs.create(model="tiny:base", training_file=f.id)
    second = await client.fine_tuning.jobs.create(model="tiny:base", training_file=f.id)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as http:
        for _ in range(500):
            training = (await http.get("/api/resources")).json()["training"]
            if training["jobs"] and training["jobs"][0]["progress"]:
                break
            await asyncio.sleep(0.01)
    assert (training["yield_policy"], training["max_jobs"]) == ("pause", 1)
    [running] = training["jobs"]
    assert running["id"] == first.id and running["progress"]["step"] == 1 and running["threads"] >= 1
    assert [q["id"] for q in training["queued"]] == [second.id]  # one job at a time
    for job in (second, first):
        await client.fine_tuning.jobs.cancel(job.id)
