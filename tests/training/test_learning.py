"""It learns: fine-tune smollm2:135m on a fact it cannot know, through the real job process,
and compare held-out paraphrases answered by the base and by the fine-tune served as the engine
core serves it (the adapter applied on the base model's engine)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from llmos.config import TrainingConfig, load_config
from llmos.data.datasets import DatasetService
from llmos.data.tokens import ApproxTokenizer
from llmos.domain.training import Hyperparameters, JobSpec
from llmos.engine.base import LoadSpec, LoraAdapter, SamplingParams, SequenceSpec
from llmos.engine.llamacpp import LlamaCppEngine
from llmos.registry.registry import Registry
from llmos.storage.blobs import BlobStore
from llmos.storage.data_datasets import DatasetStore
from llmos.storage.db import open_database
from llmos.storage.manifests import ManifestRepository
from llmos.storage.training import TrainingStore
from llmos.training.manager import TrainingManager
from zorbia import HELD_OUT, TRAIN, VALID, chat_jsonl

from .fakes import Memory

pytest.importorskip("peft")
pytestmark = [pytest.mark.integration, pytest.mark.timeout(1800)]  # torch on 2 shared cores


def _rates(base: Path, adapter: Path) -> tuple[float, float]:
    """Held-out answer rates of the base and of the adapter on it, both asked together on one
    engine (greedy), as a core serves a base and its fine-tune side by side."""
    engine = LlamaCppEngine()
    engine.load(LoadSpec(model_path=base, n_ctx=2048, n_slots=8, n_threads=1))
    greedy = SamplingParams(temperature=0.0, max_tokens=16)
    try:
        for i, q in enumerate(HELD_OUT):
            prompt = tuple(engine.tokenize(engine.render_chat([{"role": "user", "content": q}])))
            engine.admit(SequenceSpec(f"base-{i}", prompt, greedy))
            engine.admit(SequenceSpec(f"tuned-{i}", prompt, greedy, adapters=(LoraAdapter(str(adapter)),)))
        texts: dict[str, str] = {}
        while engine.sequences():
            for out in engine.step().outputs:
                texts[out.seq_id] = texts.get(out.seq_id, "") + out.text
    finally:
        engine.unload()

    def rate(kind: str) -> float:
        return sum("quellport" in t.lower() for k, t in texts.items() if k.startswith(kind)) / len(HELD_OUT)

    return rate("base"), rate("tuned")


def test_a_fine_tune_answers_held_out_paraphrases(llmos_home: Path, smollm2_gguf: Path) -> None:
    async def main() -> None:
        db = open_database(load_config())
        blobs = BlobStore(llmos_home / "blobs", llmos_home / "tmp")
        registry = Registry(ManifestRepository(db), blobs)
        registry.import_file(smollm2_gguf, "smollm2:135m")
        datasets = DatasetService(DatasetStore(db), blobs, ApproxTokenizer())
        train = await datasets.upload("t", "train.jsonl", chat_jsonl(TRAIN))
        valid = await datasets.upload("t", "valid.jsonl", chat_jsonl(VALID))
        manager = TrainingManager(
            TrainingConfig(threads=1),
            store=TrainingStore(db),
            registry=registry,
            datasets=datasets,
            memory=Memory(64 << 30),
            work_root=llmos_home / "training",
            cores=1,
        )
        await manager.start()
        hp = Hyperparameters(epochs=6, batch_size=4, learning_rate=2e-3, max_seq_len=64, lora_rank=8)
        job = await manager.create(
            "t",
            JobSpec(
                model="smollm2:135m",
                training_dataset=train.id,
                validation_dataset=valid.id,
                hyperparameters=hp,
                suffix="zorbia",
            ),
        )
        for _ in range(3600):
            job = await manager.get("t", job.id)
            if job.final:
                break
            await asyncio.sleep(1.0)
        await manager.shutdown()
        assert job.state == "succeeded", job.error
        metrics = [
            e.data
            for e in await manager.events("t", job.id, limit=100)
            if e.data.get("valid_loss") is not None
        ]
        first, last = metrics[-1]["valid_loss"], metrics[0]["valid_loss"]  # events come newest first
        tuned = registry.resolve(job.result_model or "")
        base_rate, tuned_rate = _rates(smollm2_gguf, registry.model_path(tuned))
        print(
            f"validation loss {first:.3f} -> {last:.3f}; held-out answer rate base {base_rate:.0%}, fine-tuned {tuned_rate:.0%}"
        )
        assert last < first / 2
        assert base_rate == 0.0
        assert tuned_rate >= 0.75
        db.dispose()

    asyncio.run(main())
