"""Per-slot KV layout: resident sequences stay in the lowest slots, and a leftover prefix survives
its slot being taken.

llama.cpp decodes per-sequence streams in ubatches of consecutive sequence ids only, one forward
pass each, so sequences scattered over the slots cost several passes per step (see
``KvSlots.compact`` in ``engine/llamacpp/slots.py``)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from llmos.engine.base import SamplingParams, SequenceSpec
from llmos.engine.llamacpp import LlamaCppEngine

from .conftest import GREEDY, Run, assert_near_greedy, chat_prompt, collect, drive, generate

pytestmark = pytest.mark.integration

MakeEngine = Callable[..., LlamaCppEngine]
LONG = SamplingParams(temperature=0.0, max_tokens=24, ignore_eos=True)


def _slots(engine: LlamaCppEngine) -> dict[str, int]:
    return {s.seq_id: s.slot for s in engine.sequences()}


def test_sequences_move_down_into_freed_slots_and_go_on_unchanged(
    make_engine: MakeEngine, smollm2_gguf: Path
) -> None:
    engine = make_engine()
    questions = {"a": "Say hi.", "b": "Name a color.", "c": "Who wrote Hamlet?", "d": "List three fruits."}
    prompts = {k: chat_prompt(engine, q) for k, q in questions.items()}
    for k, prompt in prompts.items():
        engine.admit(SequenceSpec(k, prompt, LONG))
    assert _slots(engine) == {"a": 0, "b": 1, "c": 2, "d": 3}
    runs: dict[str, Run] = {}
    for _ in range(6):  # prefill, then a few tokens each
        collect(engine.step().outputs, runs)
    engine.abort("a")
    engine.abort("c")
    collect(engine.step().outputs, runs)
    assert sorted(_slots(engine).values()) == [0, 1]  # b and d packed into the lowest slots
    assert _slots(engine)["d"] == 0
    drive(engine, runs)
    for k in ("b", "d"):
        assert runs[k].finish == "length" and len(runs[k].tokens) == 24
        assert_near_greedy(smollm2_gguf, prompts[k], runs[k].tokens)
    # the slots are free and clean: a new sequence in slot 0 generates what it would alone
    alone = generate(make_engine(), "x", prompts["c"])
    assert generate(engine, "x", prompts["c"]).tokens == alone.tokens


def test_a_leftover_prefix_survives_when_its_slot_is_taken(make_engine: MakeEngine) -> None:
    engine = make_engine()
    france = chat_prompt(engine, "What is the capital of France?")
    first = generate(engine, "first", france)
    assert first.finish is not None
    # Another prompt takes slot 0, where the first sequence's KV was left behind ...
    engine.admit(SequenceSpec("other", chat_prompt(engine, "Name a color."), GREEDY))
    assert _slots(engine) == {"other": 0}
    # ... which moved elsewhere first: the same question again reuses all of it but the last token.
    again = engine.admit(SequenceSpec("again", france, GREEDY))
    assert again.slot == 1
    assert again.cached_tokens == len(france) - 1
    runs = drive(engine)
    assert runs["again"].tokens == first.tokens
