"""The solo lane: a sequence decoding alone runs on the model file's own weights (Q4_1) while the
main context maps their Q8_0 re-encoding, and moves back when anything else needs the main
context (``engine/llamacpp/solo.py``). Whatever moves, every token stays the model's greedy
choice, checked against an independent teacher-forced pass over the file."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from llmos.engine.base import SamplingParams, SequenceSpec
from llmos.engine.llamacpp import LlamaCppEngine
from llmos.engine.llamacpp import solo as solo_module

from .conftest import Run, assert_near_greedy, chat_prompt, collect, drive

pytestmark = pytest.mark.integration

MakeEngine = Callable[..., LlamaCppEngine]
LONG = SamplingParams(temperature=0.0, max_tokens=40, ignore_eos=True)


def _steps(engine: LlamaCppEngine, runs: dict[str, Run], n: int) -> None:
    for _ in range(n):
        collect(engine.step().outputs, runs)


def test_a_lone_sequence_decodes_in_the_lane(make_engine: MakeEngine, smollm2_gguf: Path) -> None:
    engine = make_engine()
    assert "one sequence alone: q4_1 (as stored)" in engine.info.weights
    assert engine.info.weights.startswith("q8_0 (converted from q4_1)")
    prompt = chat_prompt(engine, "Tell me about the sea.")
    engine.admit(SequenceSpec("a", prompt, LONG))
    run = drive(engine)["a"]
    assert run.finish == "length" and len(run.tokens) == 40
    assert engine.solo_tokens == 39  # every token after the prefill's first
    assert_near_greedy(smollm2_gguf, prompt, run.tokens)
    # its prompt stayed in the main context: the same prompt again reuses all of it but one token
    again = engine.admit(SequenceSpec("b", prompt, LONG))
    assert again.cached_tokens == len(prompt) - 1
    assert drive(engine)["b"].tokens == run.tokens


def test_a_second_sequence_moves_the_first_back_with_its_tokens(
    make_engine: MakeEngine, smollm2_gguf: Path
) -> None:
    engine = make_engine()
    first = chat_prompt(engine, "Tell me about the sea.")
    second = chat_prompt(engine, "Name three colors.")
    engine.admit(SequenceSpec("a", first, LONG))
    runs: dict[str, Run] = {}
    _steps(engine, runs, 12)  # prefill, then 11 tokens in the lane
    assert engine.solo_tokens == 11
    longer = SamplingParams(temperature=0.0, max_tokens=64, ignore_eos=True)
    engine.admit(SequenceSpec("b", second, longer))  # "a" moves back to the main context
    _steps(engine, runs, 10)
    assert engine.solo_tokens == 11
    # "b" goes on alone after "a" ends with 36 tokens to go: one step in the main context, which
    # applies the move of "b" down into slot 0 that "a" left, then the lane takes the other 35.
    drive(engine, runs)
    assert engine.solo_tokens == 11 + 35
    for key, prompt, n in (("a", first, 40), ("b", second, 64)):
        assert runs[key].finish == "length" and len(runs[key].tokens) == n
        assert_near_greedy(smollm2_gguf, prompt, runs[key].tokens)


def test_a_sequence_preempted_from_the_lane_resumes_where_it_was(
    make_engine: MakeEngine, smollm2_gguf: Path
) -> None:
    engine = make_engine()
    prompt = chat_prompt(engine, "Tell me about the sea.")
    engine.admit(SequenceSpec("a", prompt, LONG))
    runs: dict[str, Run] = {}
    _steps(engine, runs, 15)
    snapshot = engine.preempt("a")
    assert len(snapshot.kv_tokens) == len(prompt) + 14  # the lane's cells came back with it
    assert engine.restore(snapshot).cached_tokens == len(snapshot.kv_tokens)
    drive(engine, runs)
    assert len(runs["a"].tokens) == 40
    assert_near_greedy(smollm2_gguf, prompt, runs["a"].tokens)


@pytest.mark.parametrize("fails", ["enter", "leave"])
def test_a_state_that_does_not_move_costs_speed_not_tokens(
    make_engine: MakeEngine, smollm2_gguf: Path, monkeypatch: pytest.MonkeyPatch, fails: str
) -> None:
    engine = make_engine()
    first = chat_prompt(engine, "Tell me about the sea.")
    engine.admit(SequenceSpec("a", first, LONG))
    runs: dict[str, Run] = {}
    if fails == "enter":
        monkeypatch.setattr(solo_module, "restream", lambda *args: None)
    _steps(engine, runs, 12)
    if fails == "leave":  # in the lane now; the way back fails: "a" feeds its lane tokens again
        assert engine.solo_tokens == 11
        monkeypatch.setattr(solo_module, "restream", lambda *args: None)
    engine.admit(SequenceSpec("b", chat_prompt(engine, "Name three colors."), LONG))
    drive(engine, runs)
    assert engine.solo_tokens == (0 if fails == "enter" else 11)  # the lane is off from then on
    assert runs["a"].finish == "length" and len(runs["a"].tokens) == 40
    assert_near_greedy(smollm2_gguf, first, runs["a"].tokens)


def test_no_lane_without_a_reencoding_or_with_one_kv_buffer(make_engine: MakeEngine) -> None:
    assert make_engine(cpu_weights="native").solo_tokens is None
    assert make_engine(extra={"kv_unified": True}).solo_tokens is None
    assert make_engine().solo_tokens == 0
