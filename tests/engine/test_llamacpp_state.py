"""Prefix reuse, preemption/restore, a full KV cache, embeddings: llama.cpp engine on SmolLM2."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from llmos.engine.base import SamplingParams, SequenceSpec
from llmos.engine.llamacpp import LlamaCppEngine
from llmos.errors import InvalidRequest, NotFound, PayloadTooLarge

from .conftest import Run, assert_near_greedy, chat_prompt, collect, drive, generate

pytestmark = pytest.mark.integration

MakeEngine = Callable[..., LlamaCppEngine]
SYSTEM = "You are a terse assistant who answers in one sentence and never uses lists or markdown."
GREEDY = SamplingParams(temperature=0.0, max_tokens=32, ignore_eos=True)


def _common(a: tuple[int, ...], b: tuple[int, ...]) -> int:
    n = 0
    while n < min(len(a), len(b)) and a[n] == b[n]:
        n += 1
    return n


def test_prefix_of_a_finished_sequence_is_reused(make_engine: MakeEngine) -> None:
    """The reused KV was computed inside another batch shape, so greedy text may differ from a
    cold run at a near-tie (llama.cpp is not bit-exact across batch shapes); the output must
    still be the model's greedy continuation, token by token, of an independent forward pass."""
    engine = make_engine()
    first = chat_prompt(engine, "What is the capital of France?", SYSTEM)
    second = chat_prompt(engine, "What is the capital of Italy?", SYSTEM)
    shared = _common(first, second)
    assert shared > 20
    generate(engine, "turn1", first, GREEDY)
    admission = engine.admit(SequenceSpec("turn2", second, GREEDY))
    assert admission.cached_tokens == shared
    reused = drive(engine)["turn2"]
    assert reused.cached == shared

    assert_near_greedy(Path(engine.info.weights_path), second, reused.tokens)
    fresh = make_engine(extra={"prefix_cache_slots": 0})
    alone = generate(fresh, "turn2", second, GREEDY)
    assert alone.cached == 0
    assert reused.tokens[:10] == alone.tokens[:10]


def test_next_chat_turn_reuses_the_whole_previous_conversation(make_engine: MakeEngine) -> None:
    engine = make_engine()
    messages = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": "Name a planet."}]
    turn1 = tuple(engine.tokenize(engine.render_chat(messages)))
    answer = generate(engine, "t1", turn1, SamplingParams(temperature=0.0, max_tokens=20))
    messages += [{"role": "assistant", "content": answer.text}, {"role": "user", "content": "Another one?"}]
    turn2 = tuple(engine.tokenize(engine.render_chat(messages)))
    assert engine.admit(SequenceSpec("t2", turn2, GREEDY)).cached_tokens >= len(turn1)
    engine.abort("t2")


@pytest.mark.parametrize("unified", [False, True])
def test_prefix_of_a_resident_sequence_is_reused(make_engine: MakeEngine, unified: bool) -> None:
    """Per-slot streams copy a whole stream and trim it (llama.cpp aborts on a partial copy
    across streams); a unified buffer shares the cells."""
    engine = make_engine(extra={"prefix_cache_slots": 0, "kv_unified": unified})
    a = chat_prompt(engine, "What is the capital of France?", SYSTEM)
    b = chat_prompt(engine, "What is the capital of Spain?", SYSTEM)
    engine.admit(SequenceSpec("a", a, GREEDY))
    runs: dict[str, Run] = {}
    collect(engine.step().outputs, runs)  # a's prompt is now in the KV cache
    assert engine.admit(SequenceSpec("b", b, GREEDY)).cached_tokens == _common(a, b)
    runs = drive(engine, runs)
    assert runs["a"].completion_tokens == runs["b"].completion_tokens == 32


@pytest.mark.parametrize("cut", [1, 9])
def test_preempt_and_restore_continue_exactly(make_engine: MakeEngine, cut: int) -> None:
    # One set of weights throughout (no solo lane, whose sequence decodes alone from other
    # weights than in company): exactly the tokens of an uninterrupted run.
    engine = make_engine(n_slots=2, cpu_weights="converted", extra={"prefix_cache_slots": 0})
    prompt = chat_prompt(engine, "What is the capital of France?")
    params = SamplingParams(temperature=0.0, max_tokens=30, ignore_eos=True, repeat_penalty=1.3)
    uninterrupted = generate(engine, "u", prompt, params)

    engine.admit(SequenceSpec("p", prompt, params))
    runs: dict[str, Run] = {}
    for _ in range(cut):
        collect(engine.step().outputs, runs)
    snapshot = engine.preempt("p")
    assert engine.sequences() == [] and engine.health().kv_used == 0
    assert len(snapshot.state) > 0 and len(snapshot.generated) == cut
    # the slot is used by someone else meanwhile
    generate(engine, "other", chat_prompt(engine, "Write a haiku about the sea."), GREEDY)
    engine.admit(SequenceSpec("filler", chat_prompt(engine, "Say hi."), GREEDY))
    admission = engine.restore(snapshot)
    assert admission.cached_tokens == len(snapshot.kv_tokens)
    runs = drive(engine, runs)
    assert runs["p"].tokens == uninterrupted.tokens
    assert runs["p"].text == uninterrupted.text
    with pytest.raises(NotFound):
        engine.preempt("p")


def test_restore_without_state_recomputes(make_engine: MakeEngine) -> None:
    engine = make_engine()
    prompt = chat_prompt(engine, "What is the capital of France?")
    uninterrupted = generate(engine, "u", prompt, GREEDY)
    engine.admit(SequenceSpec("p", prompt, GREEDY))
    runs: dict[str, Run] = {}
    for _ in range(5):
        collect(engine.step().outputs, runs)
    snapshot = engine.preempt("p")
    from dataclasses import replace

    assert engine.restore(replace(snapshot, state=b"")).cached_tokens == 0
    assert drive(engine, runs)["p"].tokens == uninterrupted.tokens
    with pytest.raises(InvalidRequest):
        engine.restore(replace(snapshot, kv_tokens=(1, 2, 3)))


def test_full_kv_cache_preempts_then_fails_cleanly(make_engine: MakeEngine) -> None:
    engine = make_engine(n_ctx=256, n_slots=4, extra={"prefix_cache_slots": 0, "kv_unified": True})
    prompts = [
        chat_prompt(engine, q) for q in ("Say hi.", "Name a color.", "Who wrote Hamlet?", "List fruits.")
    ]
    params = SamplingParams(temperature=0.0, max_tokens=400, ignore_eos=True)
    for i, p in enumerate(prompts):
        engine.admit(SequenceSpec(f"s{i}", p, params))
    runs: dict[str, Run] = {}
    preempted = []
    for _ in range(1000):
        if not engine.sequences():
            break
        result = engine.step()
        collect(result.outputs, runs)
        preempted.extend(result.preempted)
    assert engine.sequences() == []
    assert [s.spec.seq_id for s in preempted] == ["s3", "s2", "s1"]  # newest first
    assert runs["s0"].finish == "error" and "KV cache is full" in (runs["s0"].error or "")
    assert runs["s0"].completion_tokens > 100
    # the engine is still usable: a preempted sequence resumes and a new one runs
    assert engine.health().ok
    engine.restore(preempted[0])
    engine.admit(SequenceSpec("new", prompts[0], SamplingParams(temperature=0.0, max_tokens=5)))
    after = drive(engine)
    assert after["new"].finish == "length" and after["new"].completion_tokens == 5


def test_per_slot_kv_ends_a_full_slot_with_length_and_keeps_others_running(make_engine: MakeEngine) -> None:
    """Per-slot streams: each of 4 slots holds 256 / 4 = 64 cells; a sequence that fills its own
    slot finishes with ``length`` without disturbing (or preempting) the others."""
    engine = make_engine(n_ctx=256, n_slots=4)
    shape = engine._m().shape
    assert not shape.kv_unified and shape.n_ctx_seq == 64
    long_prompt = chat_prompt(engine, "Say hi.")
    engine.admit(
        SequenceSpec("long", long_prompt, SamplingParams(temperature=0.0, max_tokens=400, ignore_eos=True))
    )
    short = SamplingParams(temperature=0.0, max_tokens=8, ignore_eos=True)
    engine.admit(SequenceSpec("short", chat_prompt(engine, "Name a color."), short))
    runs: dict[str, Run] = {}
    preempted = []
    for _ in range(200):
        if not engine.sequences():
            break
        result = engine.step()
        collect(result.outputs, runs)
        preempted.extend(result.preempted)
    assert preempted == []
    assert runs["long"].finish == "length" and runs["long"].error is None
    assert len(long_prompt) + runs["long"].completion_tokens == 64 + 1  # the last token is never fed
    assert runs["short"].finish == "length" and runs["short"].completion_tokens == 8
    assert not engine.can_admit(64)  # a prompt needs its own cells plus one
    with pytest.raises(PayloadTooLarge):
        engine.admit(SequenceSpec("big", tuple([1] * 64), GREEDY))


def test_per_slot_preempt_before_a_pending_copy_lands_recomputes(make_engine: MakeEngine) -> None:
    """A prefix copied across streams lands at the next decode: a snapshot taken before then has
    no KV state, and its restore recomputes the prompt to the same greedy output."""
    engine = make_engine(extra={"prefix_cache_slots": 0})
    a = chat_prompt(engine, "What is the capital of France?", SYSTEM)
    b = chat_prompt(engine, "What is the capital of Spain?", SYSTEM)
    engine.admit(SequenceSpec("a", a, GREEDY))
    engine.step()
    assert engine.admit(SequenceSpec("b", b, GREEDY)).cached_tokens == _common(a, b)
    snapshot = engine.preempt("b")
    assert snapshot.state == b""
    assert engine.restore(snapshot).cached_tokens == 0
    runs = drive(engine)
    alone = generate(make_engine(), "b", b, GREEDY)
    assert runs["b"].tokens[:10] == alone.tokens[:10]


def test_embeddings_are_pooled_normalized_and_batched(make_engine: MakeEngine) -> None:
    engine = make_engine(embedding=True, n_slots=4)
    texts = [
        "The cat sat on the mat.",
        "The cat sat on the mat.",
        "Quarterly revenue grew 4%.",
        "A kitten sat on a rug.",
    ]
    vectors = np.asarray(engine.embed(texts))
    assert vectors.shape == (4, engine.info.embedding_dim)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert np.allclose(vectors[0], vectors[1], atol=1e-5)
    one = np.asarray(engine.embed([texts[2]]))[0]
    assert np.allclose(one, vectors[2], atol=1e-3)  # batching does not mix sequences
    assert vectors[0] @ vectors[3] > vectors[0] @ vectors[2]
    raw = np.asarray(engine.embed([texts[0]], normalize=False))[0]
    assert abs(float(np.linalg.norm(raw)) - 1.0) > 1e-3
    with pytest.raises(InvalidRequest):
        engine.admit(SequenceSpec("x", (1, 2), GREEDY))
    generative = make_engine()  # a generation context embeds through a context of its own
    assert len(generative.embed(["x"])[0]) == engine.info.embedding_dim
