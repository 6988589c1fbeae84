"""The estimate against llmos's own engine core: the core process's reported RSS after decoding
with every slot busy (integration)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from llmos.config import EngineConfig, SchedulerConfig
from llmos.core import CoreClient, CoreSpec, ProcessHost
from llmos.engine.base import LoadSpec, SamplingParams, SequenceSpec
from llmos.resources import EstimateParams, estimate_gguf
from llmos.scheduler import GenerationRequest, RequestClass

TOLERANCE = 0.25
PROMPT_TOKENS = 64


async def core_rss_after_decode(model: Path, engine: EngineConfig) -> int:
    load = LoadSpec(model_path=model, n_ctx=engine.n_ctx, n_slots=engine.n_slots, n_batch=engine.n_batch)
    client = CoreClient(ProcessHost(), CoreSpec("llamacpp", load, "estimate:test", SchedulerConfig()))
    await client.start()
    try:
        streams = []
        for s in range(engine.n_slots):  # every slot busy, like a loaded server
            prompt = tuple(100 + (p * 7 + s) % 1000 for p in range(PROMPT_TOKENS))
            spec = SequenceSpec(seq_id=f"s{s}", prompt=prompt, params=SamplingParams(max_tokens=8))
            streams.append(client.submit(GenerationRequest(f"s{s}", spec, RequestClass(tenant="t"))))
        await asyncio.gather(*(s.collect() for s in streams))
        health = await client.health()
        assert health.ok and health.rss_bytes > 0, health
        return health.rss_bytes
    finally:
        await client.close()


@pytest.mark.integration
@pytest.mark.parametrize("fixture", ["smollm2_gguf", "gemma3_gguf"])
def test_estimate_within_25_percent_of_the_core_rss(fixture: str, request: pytest.FixtureRequest) -> None:
    model: Path = request.getfixturevalue(fixture)
    engine = EngineConfig()
    estimate = estimate_gguf(model, EstimateParams.from_engine_config(engine))
    measured = asyncio.run(core_rss_after_decode(model, engine))
    error = (estimate.total - measured) / measured
    assert abs(error) <= TOLERANCE, (
        f"{model.name}: estimate {estimate.describe()} vs core RSS {measured / 2**20:.0f} MiB ({error:+.1%})"
    )
