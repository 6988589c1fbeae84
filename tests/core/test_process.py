"""Engine cores in processes of their own: isolation, a SIGKILL fails requests fast, a dying
parent takes its cores with it, and the llama.cpp backend in a core matches it in-process."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from llmos.config import SchedulerConfig
from llmos.core import CoreClient, CoreSpec, ProcessHost
from llmos.engine.base import LoadSpec, SamplingParams, SequenceSpec
from llmos.errors import EngineDeadError
from llmos.scheduler import GenerationRequest, ModelScheduler, RequestClass
from polling import until

from .conftest import Harness, fake_spec, request

pytestmark = pytest.mark.anyio


def _gone(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/status") as f:
            return any(line.startswith("State:") and "Z" in line for line in f)
    except FileNotFoundError:
        return True


def _sleeping_in_step(pid: int) -> bool:
    """The core's main thread is inside the fake step's long sleep (not waiting for a message)."""
    return Path(f"/proc/{pid}/wchan").read_text() == "hrtimer_nanosleep"


async def test_a_core_runs_in_its_own_process_and_stops_with_close(harness: Harness) -> None:
    client = await harness.client(fake_spec(), host=ProcessHost())
    pid = client.pid
    assert pid is not None and pid != os.getpid()
    outs = await asyncio.wait_for(client.submit(request("r", max_tokens=7)).collect(), timeout=30)
    assert outs[-1].finish_reason == "length" and outs[-1].completion_tokens == 7
    assert (await client.health()).pid == pid
    await client.close()
    await until(lambda: _gone(pid), within_s=10.0, what=f"core process {pid} gone", every_s=0.01)


async def test_sigkill_of_the_core_fails_its_requests_within_a_second(harness: Harness) -> None:
    client = await harness.client(fake_spec(step_cost_s=30.0), host=ProcessHost())
    pid = client.pid
    assert pid is not None
    streams = [client.submit(request(f"r{i}", max_tokens=50)) for i in range(3)]  # 2 run, 1 queued
    await until(
        lambda: _sleeping_in_step(pid), within_s=20.0, what="the core asleep in its step", every_s=0.01
    )
    killed_at = time.monotonic()
    os.kill(pid, signal.SIGKILL)
    for s in streams:
        with pytest.raises(EngineDeadError, match="SIGKILL"):
            await asyncio.wait_for(s.collect(), timeout=5)
    assert time.monotonic() - killed_at < 1.0
    assert harness.dead and "SIGKILL" in harness.dead[0] and not client.alive
    fresh = await harness.client(fake_spec(), host=ProcessHost())  # this process lives on
    assert (await fresh.submit(request("again")).collect())[-1].finish_reason == "length"


PARENT_SCRIPT = textwrap.dedent(
    """
    import asyncio, sys
    from pathlib import Path
    from llmos.core import CoreClient, CoreSpec, ProcessHost
    from llmos.engine.base import LoadSpec

    async def main():
        spec = CoreSpec(backend="fake", load=LoadSpec(model_path=Path("/x.gguf")), model="fake:x")
        client = CoreClient(ProcessHost(), spec)
        await client.start()
        print(client.pid, flush=True)
        await asyncio.sleep(600)

    if __name__ == "__main__":
        asyncio.run(main())
    """
)


def test_a_dying_parent_takes_its_core_with_it(tmp_path: Path) -> None:
    script = tmp_path / "parent.py"
    script.write_text(PARENT_SCRIPT)
    parent = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
    try:
        assert parent.stdout is not None
        child_pid = int(parent.stdout.readline())
        assert not _gone(child_pid)
        parent.kill()
        parent.wait(5)
        deadline = time.monotonic() + 5.0
        while not _gone(child_pid) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert _gone(child_pid), "the core outlived its parent"
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait(5)


@pytest.mark.integration
async def test_llamacpp_in_a_core_process_matches_it_in_process(smollm2_gguf: Path) -> None:
    from llmos.engine.llamacpp import LlamaCppEngine

    load = LoadSpec(model_path=smollm2_gguf, n_ctx=2048, n_slots=4, n_threads=2, cpu_weights="native")
    params = SamplingParams(temperature=0.0, max_tokens=20, ignore_eos=True)
    messages = [{"role": "user", "content": "What is the capital of France?"}]
    local = LlamaCppEngine()
    local.load(load)
    try:
        prompt = tuple(local.tokenize(local.render_chat(messages), add_special=False, parse_special=True))
        s = ModelScheduler(local)
        s.add(GenerationRequest("a", SequenceSpec("a", prompt, params), RequestClass(tenant="t")))
        expected: list[int] = []
        while s.has_work:
            expected += [t for _, out in s.step() for t in getattr(out, "token_ids", ())]
    finally:
        local.unload()
    client = CoreClient(ProcessHost(), CoreSpec("llamacpp", load, "smollm2:test", SchedulerConfig()))
    await client.start()
    try:
        assert tuple(await client.render_prompt(messages)) == prompt  # rendered and tokenized in the core
        got = await client.submit(
            GenerationRequest("a", SequenceSpec("a", prompt, params), RequestClass(tenant="t"))
        ).collect()
        assert [t for o in got for t in o.token_ids] == expected
        vectors = await client.embed([list(prompt[:8])])
        assert len(vectors[0]) == client.info.embedding_dim
        assert (await client.health()).rss_bytes > 0
    finally:
        await client.close()
