"""The estimate against llmos's own engine worker: WorkerEngine's reported RSS after decoding (integration)."""

from __future__ import annotations

from pathlib import Path

import pytest

from llmos.config import EngineConfig
from llmos.engine.base import LoadSpec, SamplingParams, SequenceSpec
from llmos.engine.worker import WorkerEngine
from llmos.resources import EstimateParams, estimate_gguf

TOLERANCE = 0.25
PROMPT_TOKENS = 64
MAX_STEPS = 64


def worker_rss_after_decode(model: Path, engine: EngineConfig) -> int:
    worker = WorkerEngine("llamacpp")
    try:
        worker.load(
            LoadSpec(model_path=model, n_ctx=engine.n_ctx, n_slots=engine.n_slots, n_batch=engine.n_batch)
        )
        for s in range(engine.n_slots):  # every slot busy, like a loaded server
            prompt = tuple(100 + (p * 7 + s) % 1000 for p in range(PROMPT_TOKENS))
            worker.admit(SequenceSpec(seq_id=f"s{s}", prompt=prompt, params=SamplingParams(max_tokens=8)))
        for _ in range(MAX_STEPS):
            if not worker.sequences():
                break
            worker.step()
        health = worker.health()
        assert health.ok and health.rss_bytes > 0, health
        return health.rss_bytes
    finally:
        worker.unload()
        worker.close()


@pytest.mark.integration
@pytest.mark.parametrize("fixture", ["smollm2_gguf", "gemma3_gguf"])
def test_estimate_within_25_percent_of_the_worker_rss(fixture: str, request: pytest.FixtureRequest) -> None:
    model: Path = request.getfixturevalue(fixture)
    engine = EngineConfig()
    estimate = estimate_gguf(model, EstimateParams.from_engine_config(engine))
    measured = worker_rss_after_decode(model, engine)
    error = (estimate.total - measured) / measured
    assert abs(error) <= TOLERANCE, (
        f"{model.name}: estimate {estimate.describe()} vs worker RSS {measured / 2**20:.0f} MiB ({error:+.1%})"
    )
