"""The residency manager over real llama.cpp processes: real loads, real RSS, real eviction (integration)."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import psutil
import pytest

from llmos.config import EngineConfig
from llmos.errors import ResourceExhausted
from llmos.resources import EstimateParams, LoadGrant, MemoryBudget, ResidencyManager, estimate_gguf

from .test_estimate_measured import PROBE

MiB = 1024 * 1024
ENGINE = EngineConfig()


@dataclass
class Worker:
    process: asyncio.subprocess.Process
    pid: int


def loader_for(model: Path, derived: Path) -> Callable[[LoadGrant], Awaitable[Worker]]:
    async def load(grant: LoadGrant) -> Worker:
        args = [str(model), str(ENGINE.n_ctx), str(ENGINE.n_slots), str(ENGINE.n_batch), str(derived)]
        args.append("--stay")
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            str(PROBE),
            *args,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.DEVNULL,
        )
        assert proc.stdout is not None
        line = await asyncio.wait_for(proc.stdout.readline(), timeout=300)
        return Worker(proc, int(json.loads(line)["pid"]))

    return load


async def unload(model: str, worker: Worker) -> None:
    assert worker.process.stdin is not None
    worker.process.stdin.close()
    await asyncio.wait_for(worker.process.wait(), timeout=60)


async def measure(worker: Worker) -> int | None:
    return int(psutil.Process(worker.pid).memory_info().rss)


@pytest.mark.integration
def test_real_models_two_fit_the_third_evicts_the_lru_one(
    smollm2_gguf: Path, gemma3_gguf: Path, tmp_path: Path
) -> None:
    params = EstimateParams.from_engine_config(ENGINE)
    small, large = estimate_gguf(smollm2_gguf, params), estimate_gguf(gemma3_gguf, params)
    budget = MemoryBudget(ram_bytes=small.total + large.total + 100 * MiB)  # two fit, a third does not

    async def main() -> None:
        rm = ResidencyManager[Worker](budget, unload=unload, cores=2, measure=measure)
        try:
            await rm.ensure_resident("smollm2:135m", small, loader_for(smollm2_gguf, tmp_path))
            await rm.ensure_resident("gemma3:270m", large, loader_for(gemma3_gguf, tmp_path))
            for info in rm.snapshot():
                assert info.measured_bytes is not None
                assert abs(info.measured_bytes - info.estimated_bytes) <= 0.25 * info.measured_bytes
            async with rm.use("smollm2:135m", small, loader_for(smollm2_gguf, tmp_path)):
                pass  # smollm2 is now the most recently used
            lease = await rm.acquire("gemma3:270m", large, loader_for(gemma3_gguf, tmp_path))
            # gemma3 is busy, so the idle smollm2 goes, although it was not the least recently used.
            await rm.ensure_resident("smollm2-copy:135m", small, loader_for(smollm2_gguf, tmp_path))
            assert {i.model for i in rm.snapshot()} == {"gemma3:270m", "smollm2-copy:135m"}
            (evicted,) = [e for e in rm.events.recent() if e.kind == "evict"]
            assert (evicted.model, evicted.for_model) == ("smollm2:135m", "smollm2-copy:135m")
            # Both resident models are busy now: a third cannot fit, and both keep running.
            lease2 = await rm.acquire("smollm2-copy:135m", small, loader_for(smollm2_gguf, tmp_path))
            with pytest.raises(ResourceExhausted):
                await rm.ensure_resident("smollm2:135m", small, loader_for(smollm2_gguf, tmp_path))
            assert [i.state for i in rm.snapshot()] == ["ready", "ready"]
            assert lease.handle.process.returncode is None and lease2.handle.process.returncode is None
            await rm.release(lease)
            await rm.release(lease2)
        finally:
            await rm.shutdown()

    asyncio.run(main())
