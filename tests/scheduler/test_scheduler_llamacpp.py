"""The scheduler over the real llama.cpp engine on SmolLM2-135M: batching, preemption, abort."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from llmos.config import SchedulerConfig
from llmos.engine.base import LoadSpec, SamplingParams, SequenceSpec
from llmos.scheduler import GenerationRequest, ModelScheduler, RequestClass

from .factories import Driver, Recorder

pytestmark = pytest.mark.integration

QUESTIONS = ["Name a colour.", "What is 2+2?", "Say hello to the sea.", "Count to five."]


@pytest.fixture(scope="module")
def engine(smollm2_gguf: Path) -> Iterator[object]:
    from llmos.engine.llamacpp import LlamaCppEngine

    e = LlamaCppEngine()
    # One set of weights for every sequence, alone or batched (no solo lane, which decodes a
    # lone sequence from the Q4_1 file): these tests compare texts across schedules.
    spec = LoadSpec(
        model_path=smollm2_gguf, n_ctx=2048, n_slots=2, n_batch=64, n_threads=2, cpu_weights="converted"
    )
    e.load(spec)
    yield e
    e.unload()


def request(
    engine: object, rid: str, question: str, urgency: int = 5, max_tokens: int = 24
) -> GenerationRequest:
    text = engine.render_chat([{"role": "user", "content": question}])  # type: ignore[attr-defined]
    prompt = tuple(engine.tokenize(text))  # type: ignore[attr-defined]
    params = SamplingParams(temperature=0.0, max_tokens=max_tokens, ignore_eos=True)
    return GenerationRequest(
        rid, SequenceSpec(rid, prompt, params), RequestClass(tenant="t", urgency=urgency)
    )


def driver(engine: object, policy: str = "fcfs", recorder: Recorder | None = None) -> Driver:
    config = SchedulerConfig(policy=policy)  # type: ignore[arg-type]
    return Driver(ModelScheduler(engine, config=config, on_event=recorder))  # type: ignore[arg-type]


def solo(engine: object, question: str) -> str:
    d = driver(engine)
    d.add(request(engine, "solo", question))
    d.drive(lambda: d.done("solo"))
    return d.text("solo")


def test_batched_requests_match_solo_runs(engine: object) -> None:
    expected = [solo(engine, q) for q in QUESTIONS]
    d = driver(engine)
    ids = [d.add(request(engine, f"r{i}", q)) for i, q in enumerate(QUESTIONS)]
    d.drive(lambda: all(d.done(r) for r in ids))
    assert [d.text(r) for r in ids] == expected
    assert all(d.outputs(r)[-1].completion_tokens == 24 for r in ids)


def test_preempted_request_resumes_identically_on_llamacpp(engine: object) -> None:
    expected = solo(engine, QUESTIONS[0])
    rec = Recorder()
    d = driver(engine, "priority", rec)
    d.add(request(engine, "low", QUESTIONS[0], urgency=2))
    d.add(request(engine, "mid", QUESTIONS[1], urgency=5))
    for _ in range(6):
        d.step()
    d.add(request(engine, "high", QUESTIONS[2], urgency=8, max_tokens=8))
    d.drive(lambda: all(d.done(r) for r in ("low", "mid", "high")), max_iters=2000)
    assert rec.ids("preempt") == ["low"]
    assert rec.ids("restore") == ["low"]
    assert d.text("low") == expected


def test_abort_frees_the_llamacpp_slot(engine: object) -> None:
    d = driver(engine)
    d.add(request(engine, "gone", QUESTIONS[3], max_tokens=500))
    for _ in range(4):
        d.step()
    assert [q.seq_id for q in engine.sequences()] == ["gone"]  # type: ignore[attr-defined]
    d.s.abort("gone")
    d.step()
    assert engine.sequences() == []  # type: ignore[attr-defined]
    assert d.finish("gone") == "abort"
