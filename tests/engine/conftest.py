"""Factories for engine tests: a loaded llama.cpp engine on SmolLM2, and a generation driver."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from llmos.engine.base import Engine, LoadSpec, SamplingParams, SequenceSpec, StepPlan
from llmos.engine.llamacpp import LlamaCppEngine

GREEDY = SamplingParams(temperature=0.0, max_tokens=32)


@dataclass
class Run:
    text: str = ""
    tokens: list[int] = field(default_factory=list)
    finish: str | None = None
    cached: int = 0
    completion_tokens: int = 0
    error: str | None = None


def drive(
    engine: Engine,
    runs: dict[str, Run] | None = None,
    *,
    plan: StepPlan | None = None,
    max_steps: int = 10_000,
) -> dict[str, Run]:
    """Step until no sequence is resident; collect each sequence's text and finish."""
    runs = {} if runs is None else runs
    for _ in range(max_steps):
        if not engine.sequences():
            return runs
        result = engine.step(plan)
        collect(result.outputs, runs)
    raise AssertionError("sequences did not finish")


def collect(outputs: Any, runs: dict[str, Run]) -> None:
    for out in outputs:
        run = runs.setdefault(out.seq_id, Run())
        run.text += out.text
        run.tokens.extend(out.token_ids)
        run.cached = out.cached_tokens
        run.completion_tokens = out.completion_tokens
        if out.finish_reason is not None:
            run.finish = out.finish_reason
            run.error = out.error


def chat_prompt(engine: Engine, question: str, system: str | None = None) -> tuple[int, ...]:
    messages = ([{"role": "system", "content": system}] if system else []) + [
        {"role": "user", "content": question}
    ]
    return tuple(engine.tokenize(engine.render_chat(messages)))


@pytest.fixture
def make_engine(smollm2_gguf: Path) -> Iterator[Callable[..., LlamaCppEngine]]:
    made: list[LlamaCppEngine] = []

    def factory(**kw: Any) -> LlamaCppEngine:
        extra = kw.pop("extra", {})
        spec = LoadSpec(
            model_path=smollm2_gguf, **{"n_ctx": 4096, "n_slots": 8, "n_batch": 512, **kw}, extra=extra
        )
        engine = LlamaCppEngine()
        engine.load(spec)
        made.append(engine)
        return engine

    yield factory
    for engine in made:
        engine.unload()


def generate(engine: Engine, seq_id: str, prompt: tuple[int, ...], params: SamplingParams = GREEDY) -> Run:
    engine.admit(SequenceSpec(seq_id, prompt, params))
    return drive(engine)[seq_id]


def assert_near_greedy(
    model_path: Path, prompt: tuple[int, ...], generated: list[int], *, tolerance: float = 0.5
) -> None:
    """Every generated token is the argmax (up to a near-tie) of an independent teacher-forced
    forward pass (llama-cpp-python's high-level ``Llama``) over the same tokens."""
    import llama_cpp
    import numpy as np

    llm = llama_cpp.Llama(str(model_path), n_ctx=1024, logits_all=True, verbose=False)
    try:
        llm.eval(list(prompt) + generated[:-1])
        scores = np.asarray(llm.scores[len(prompt) - 1 : len(prompt) - 1 + len(generated)])
    finally:
        llm.close()
    gaps = scores.max(axis=1) - scores[np.arange(len(generated)), generated]
    assert float(gaps.max()) < tolerance, gaps
