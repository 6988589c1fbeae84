"""The scheduler over the real llama.cpp engine on SmolLM2-135M: batching, preemption, cancel."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from llmos.config import SchedulerConfig
from llmos.engine.base import LoadSpec, SamplingParams, SequenceSpec
from llmos.scheduler import GenerationRequest, ModelScheduler, RequestClass, SchedulerEvent

pytestmark = pytest.mark.integration

QUESTIONS = ["Name a colour.", "What is 2+2?", "Say hello to the sea.", "Count to five."]


@pytest.fixture(scope="module")
def engine(smollm2_gguf: Path) -> Iterator[object]:
    from llmos.engine.llamacpp import LlamaCppEngine

    e = LlamaCppEngine()
    e.load(LoadSpec(model_path=smollm2_gguf, n_ctx=2048, n_slots=2, n_batch=64, n_threads=2))
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


async def solo(engine: object, question: str) -> str:
    s = ModelScheduler(engine, config=SchedulerConfig())  # type: ignore[arg-type]
    s.start()
    try:
        return "".join(o.text for o in await s.submit(request(engine, "solo", question)).collect())
    finally:
        await s.stop(drain_timeout=0)


def test_batched_requests_match_solo_runs(engine: object) -> None:
    async def main() -> None:
        expected = [await solo(engine, q) for q in QUESTIONS]
        s = ModelScheduler(engine, config=SchedulerConfig())  # type: ignore[arg-type]
        s.start()
        try:
            handles = [s.submit(request(engine, f"r{i}", q)) for i, q in enumerate(QUESTIONS)]
            got = await asyncio.wait_for(asyncio.gather(*(h.collect() for h in handles)), timeout=120)
        finally:
            await s.stop(drain_timeout=0)
        assert ["".join(o.text for o in outs) for outs in got] == expected
        assert all(outs[-1].completion_tokens == 24 for outs in got)

    asyncio.run(main())


def test_preempted_request_resumes_identically_on_llamacpp(engine: object) -> None:
    async def main() -> None:
        expected = await solo(engine, QUESTIONS[0])
        events: list[SchedulerEvent] = []
        s = ModelScheduler(engine, config=SchedulerConfig(policy="priority"), on_event=events.append)  # type: ignore[arg-type]
        low = s.submit(request(engine, "low", QUESTIONS[0], urgency=2))
        mid = s.submit(request(engine, "mid", QUESTIONS[1], urgency=5))
        for _ in range(6):
            s.step_once()
        high = s.submit(request(engine, "high", QUESTIONS[2], urgency=8, max_tokens=8))
        for _ in range(2000):
            if low.done and mid.done and high.done:
                break
            s.step_once()
        assert [e.request_id for e in events if e.kind == "preempt"] == ["low"]
        assert [e.request_id for e in events if e.kind == "restore"] == ["low"]
        assert "".join(o.text for o in await low.collect()) == expected
        await s.stop(drain_timeout=0)

    asyncio.run(main())


def test_cancel_frees_the_llamacpp_slot(engine: object) -> None:
    async def main() -> None:
        s = ModelScheduler(engine, config=SchedulerConfig())  # type: ignore[arg-type]
        h = s.submit(request(engine, "gone", QUESTIONS[3], max_tokens=500))
        for _ in range(4):
            s.step_once()
        assert [q.seq_id for q in engine.sequences()] == ["gone"]  # type: ignore[attr-defined]
        await h.cancel()
        s.step_once()
        assert engine.sequences() == []  # type: ignore[attr-defined]
        await s.stop(drain_timeout=0)

    asyncio.run(main())
