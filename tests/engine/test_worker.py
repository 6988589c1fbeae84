"""Worker processes: typed round trips, a killed worker fails fast, a dead parent takes its worker."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from llmos.engine.base import Engine, LoadSpec, SamplingParams, SequenceSpec
from llmos.engine.llamacpp import LlamaCppEngine
from llmos.engine.worker import WorkerEngine
from llmos.errors import EngineDeadError, InvalidRequest

from .conftest import chat_prompt, drive

FAKE_SPEC = LoadSpec(model_path=Path("/nonexistent/fake.gguf"), n_ctx=4096, n_slots=4)


def _gone(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/status") as f:
            return any(line.startswith("State:") and "Z" in line for line in f)
    except FileNotFoundError:
        return True


def _wait(cond: object, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():  # type: ignore[operator]
            return True
        time.sleep(0.02)
    return False


def test_worker_implements_the_protocol_over_fake_backend() -> None:
    with WorkerEngine("fake") as worker:
        info = worker.load(FAKE_SPEC)
        assert isinstance(worker, Engine)
        assert worker.info == info and worker.pid != os.getpid()
        prompt = tuple(worker.tokenize(worker.render_chat([{"role": "user", "content": "hi"}])))
        assert worker.detokenize(worker.tokenize("abc", add_special=False)) == "abc"
        assert worker.can_admit(len(prompt))
        worker.admit(SequenceSpec("a", prompt, SamplingParams(temperature=0.0, max_tokens=5)))
        with pytest.raises(InvalidRequest):  # errors come back typed (the fake says InvalidRequest)
            worker.admit(SequenceSpec("a", prompt, SamplingParams(temperature=0.0, max_tokens=5)))
        run = drive(worker)["a"]
        assert run.finish == "length" and run.completion_tokens == 5
        assert worker.health().ok and worker.health().pid == worker.pid


def test_unknown_backend() -> None:
    with pytest.raises(InvalidRequest):
        WorkerEngine("nope")


def test_killing_the_worker_mid_generation_fails_fast() -> None:
    worker = WorkerEngine("fake")
    try:
        worker.load(
            LoadSpec(model_path=FAKE_SPEC.model_path, n_ctx=4096, n_slots=4, extra={"step_cost_s": 30.0})
        )
        worker.admit(SequenceSpec("a", (5, 6, 7), SamplingParams(temperature=0.0, max_tokens=50)))
        raised: list[BaseException] = []

        def pending() -> None:
            try:
                worker.step()
            except BaseException as exc:  # captured for the assertion below
                raised.append(exc)

        thread = threading.Thread(target=pending)
        thread.start()
        assert worker.pid is not None
        _wait_until_sleeping_in_step(worker.pid)
        killed_at = time.monotonic()
        os.kill(worker.pid, signal.SIGKILL)
        thread.join(5.0)
        assert time.monotonic() - killed_at < 1.0
        assert len(raised) == 1 and isinstance(raised[0], EngineDeadError)
        with pytest.raises(EngineDeadError):
            worker.step()
        health = worker.health()
        assert not health.ok and "died" in health.detail
    finally:
        worker.close()
    with WorkerEngine("fake") as fresh:  # the parent survives and starts over
        fresh.load(FAKE_SPEC)
        assert fresh.health().ok


def _wait_until_sleeping_in_step(pid: int, within_s: float = 10.0) -> None:
    """Poll until the worker's main thread is inside the fake step's 30 s sleep (not in its pipe
    read): only then is the kill really mid-generation."""
    until = time.monotonic() + within_s
    while Path(f"/proc/{pid}/wchan").read_text() != "hrtimer_nanosleep":
        if time.monotonic() > until:
            raise AssertionError("the step never reached the worker")
        time.sleep(0.01)


PARENT_SCRIPT = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from llmos.engine.base import LoadSpec
    from llmos.engine.worker import WorkerEngine
    if __name__ == "__main__":
        w = WorkerEngine("fake")
        w.load(LoadSpec(model_path=Path("/x.gguf")))
        print(w.pid, flush=True)
        time.sleep(600)
    """
)


def test_a_dying_parent_takes_its_worker_with_it(tmp_path: Path) -> None:
    script = tmp_path / "parent.py"
    script.write_text(PARENT_SCRIPT)
    parent = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
    try:
        assert parent.stdout is not None
        child_pid = int(parent.stdout.readline())
        assert not _gone(child_pid)
        parent.kill()
        parent.wait(5)
        assert _wait(lambda: _gone(child_pid), 5.0), "worker outlived its parent"
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait(5)


@pytest.mark.integration
def test_llamacpp_backend_in_a_worker_matches_in_process(smollm2_gguf: Path) -> None:
    spec = LoadSpec(model_path=smollm2_gguf, n_ctx=2048, n_slots=4)
    local = LlamaCppEngine()
    local.load(spec)
    try:
        prompt = chat_prompt(local, "What is the capital of France?")
        params = SamplingParams(temperature=0.0, max_tokens=20, ignore_eos=True)
        local.admit(SequenceSpec("a", prompt, params))
        expected = drive(local)["a"]
    finally:
        local.unload()
    with WorkerEngine("llamacpp") as worker:
        worker.load(spec)
        worker.admit(SequenceSpec("a", prompt, params))
        got = drive(worker)["a"]
        assert got.tokens == expected.tokens and got.text == expected.text
        snapshot = worker.preempt  # round trip of a snapshot through the pipe
        worker.admit(SequenceSpec("b", prompt, params))
        worker.step()
        snap = snapshot("b")
        assert worker.restore(snap).cached_tokens == len(snap.kv_tokens)
        assert drive(worker)["b"].completion_tokens == 20
        assert worker.embed is not None
        pid = worker.pid
        assert pid is not None
        os.kill(pid, signal.SIGKILL)
        with pytest.raises(EngineDeadError):
            worker.sequences()
