"""The llama.cpp engine on SmolLM2: batching, chunked prefill, limits, sampling, abort."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import llama_cpp
import pytest

from llmos.engine.base import SamplingParams, SequenceSpec, StepPlan
from llmos.engine.llamacpp import LlamaCppEngine
from llmos.errors import Conflict, InvalidRequest, Overloaded

from .conftest import GREEDY, Run, assert_near_greedy, chat_prompt, collect, drive, generate

pytestmark = pytest.mark.integration

QUESTIONS = [
    "Say hi.",
    "What is 2+2?",
    "Name a color.",
    "Write a haiku about the sea.",
    "Translate 'cat' to French.",
    "Who wrote Hamlet?",
    "List three fruits.",
    "What is the capital of Japan?",
]
FRANCE = "What is the capital of France?"

MakeEngine = Callable[..., LlamaCppEngine]


@pytest.mark.parametrize("cpu_weights", ["converted", "native"])
def test_greedy_output_matches_llama_cpp_high_level_api(
    make_engine: MakeEngine, smollm2_gguf: Path, cpu_weights: str
) -> None:
    # Same numerics as llama_cpp.Llama on the same weights file (Llama disables flash
    # attention): token-identical output. ``converted`` maps the Q4_1 file as its Q8_0
    # re-encoding, ``native`` the file itself. (``auto`` decodes a lone sequence from the file
    # after reading its prompt with the re-encoding, which no single-file reference reproduces:
    # ``test_llamacpp_solo.py`` checks it token by token against the file.)
    engine = make_engine(cpu_weights=cpu_weights, extra={"flash_attn": "off"})
    weights = Path(engine.info.weights_path)
    assert (weights == smollm2_gguf) == (cpu_weights == "native")
    prompt = chat_prompt(engine, FRANCE)
    ours = generate(engine, "a", prompt, SamplingParams(temperature=0.0, max_tokens=40))
    llm = llama_cpp.Llama(str(weights), n_ctx=1024, verbose=False)
    try:
        ref = llm.create_completion(list(prompt), max_tokens=40, temperature=0.0, repeat_penalty=1.0)
    finally:
        llm.close()
    assert ours.text == ref["choices"][0]["text"]  # type: ignore[index]
    assert ours.finish == "length" and ours.completion_tokens == 40


def test_batched_tokens_are_argmax_of_a_reference_forward_pass(make_engine: MakeEngine) -> None:
    """Eight sequences in one batch. llama.cpp is not bit-exact across batch shapes (kernels
    accumulate in another order), so greedy text can flip at near-ties. What must hold: every
    token a batched sequence produced is the argmax (up to a near-tie) of an independent
    teacher-forced forward pass over the same tokens, and identical batches are deterministic."""
    engine = make_engine(extra={"prefix_cache_slots": 0})
    prompts = [chat_prompt(engine, q) for q in QUESTIONS]
    params = SamplingParams(temperature=0.0, max_tokens=24)
    for i, p in enumerate(prompts):
        engine.admit(SequenceSpec(f"s{i}", p, params))
    first = drive(engine)
    again = make_engine(extra={"prefix_cache_slots": 0})
    for i, p in enumerate(prompts):
        again.admit(SequenceSpec(f"s{i}", p, params))
    assert {k: v.tokens for k, v in drive(again).items()} == {k: v.tokens for k, v in first.items()}

    for i, p in enumerate(prompts):
        assert_near_greedy(Path(engine.info.weights_path), p, first[f"s{i}"].tokens)


def test_chunked_prefill_runs_beside_decoding_sequences(make_engine: MakeEngine) -> None:
    engine = make_engine(n_batch=64)
    long_prompt = chat_prompt(engine, "Summarize this. " + " ".join(f"Item {i} is blue." for i in range(60)))
    assert len(long_prompt) > 200
    params = SamplingParams(temperature=0.0, max_tokens=40, ignore_eos=True)
    engine.admit(SequenceSpec("d1", chat_prompt(engine, QUESTIONS[0]), params))
    engine.admit(SequenceSpec("d2", chat_prompt(engine, QUESTIONS[1]), params))
    runs: dict[str, Run] = {}
    collect(engine.step().outputs, runs)  # both prompts read, first tokens sampled
    collect(engine.step().outputs, runs)
    engine.admit(SequenceSpec("long", long_prompt, SamplingParams(temperature=0.0, max_tokens=8)))
    prefill_steps = 0
    while any(s.phase == "prefill" for s in engine.sequences()):
        before = {k: len(v.tokens) for k, v in runs.items()}
        result = engine.step()
        assert result.n_tokens <= 64
        collect(result.outputs, runs)
        assert len(runs["d1"].tokens) == before["d1"] + 1  # decodes never stall behind the prefill
        assert len(runs["d2"].tokens) == before["d2"] + 1
        prefill_steps += 1
    assert prefill_steps >= len(long_prompt) // 64
    drive(engine, runs)
    assert runs["long"].completion_tokens == 8
    alone = generate(make_engine(), "x", long_prompt, SamplingParams(temperature=0.0, max_tokens=8))
    assert alone.tokens[:1] == runs["long"].tokens[:1]


def test_explicit_plan_feeds_exactly_what_it_names(make_engine: MakeEngine) -> None:
    engine = make_engine()
    engine.admit(SequenceSpec("a", chat_prompt(engine, FRANCE), GREEDY))
    engine.admit(SequenceSpec("b", chat_prompt(engine, QUESTIONS[1]), GREEDY))
    result = engine.step(StepPlan({"a": 10}))
    assert result.n_tokens == 10 and result.outputs == ()
    status = {s.seq_id: s for s in engine.sequences()}
    assert status["a"].kv_tokens == 10 and status["b"].kv_tokens == 0
    with pytest.raises(InvalidRequest):
        engine.step(StepPlan({"a": 400, "b": 400}))


def test_abort_frees_slot_and_kv_at_once(make_engine: MakeEngine) -> None:
    engine = make_engine(n_slots=2, extra={"prefix_cache_slots": 0})
    prompt = chat_prompt(engine, FRANCE)
    engine.admit(SequenceSpec("a", prompt, GREEDY))
    slot_b = engine.admit(SequenceSpec("b", chat_prompt(engine, QUESTIONS[3]), GREEDY)).slot
    engine.step()
    assert not engine.can_admit(10)
    with pytest.raises(Overloaded):
        engine.admit(SequenceSpec("c", prompt, GREEDY))
    kv_before = engine.health().kv_used
    memory = llama_cpp.llama_get_memory(engine._m().ctx)
    assert llama_cpp.llama_memory_seq_pos_max(memory, slot_b) >= 0
    engine.abort("b")
    assert llama_cpp.llama_memory_seq_pos_max(memory, slot_b) == -1
    assert engine.health().kv_used < kv_before
    assert engine.can_admit(10)
    assert [s.seq_id for s in engine.sequences()] == ["a"]
    engine.abort("unknown")  # ignored
    assert drive(engine)["a"].finish in ("stop", "length")


def test_max_tokens_eos_and_ignore_eos(make_engine: MakeEngine) -> None:
    engine = make_engine()
    prompt = chat_prompt(engine, QUESTIONS[1])  # a short answer that ends with EOS
    eos = generate(engine, "eos", prompt, SamplingParams(temperature=0.0, max_tokens=100))
    assert eos.finish == "stop" and eos.completion_tokens < 100
    assert eos.tokens[-1] in engine.info.eos_token_ids
    assert "<|im_end|>" not in eos.text
    forced = generate(
        engine,
        "ign",
        prompt,
        SamplingParams(temperature=0.0, max_tokens=eos.completion_tokens + 10, ignore_eos=True),
    )
    assert forced.finish == "length" and forced.completion_tokens == eos.completion_tokens + 10
    short = generate(engine, "len", prompt, SamplingParams(temperature=0.0, max_tokens=3))
    assert short.finish == "length" and short.tokens == eos.tokens[:3]


def test_stop_strings_cut_the_text_and_hold_back_partial_matches(make_engine: MakeEngine) -> None:
    engine = make_engine()
    prompt = chat_prompt(engine, FRANCE)
    full = generate(engine, "full", prompt, SamplingParams(temperature=0.0, max_tokens=40))
    stop = "Marseillaise" if "Marseillaise" in full.text else full.text[10:18]
    engine.admit(
        SequenceSpec("s", prompt, SamplingParams(temperature=0.0, max_tokens=40, stop=("zzz-never", stop)))
    )
    pieces: list[str] = []
    while engine.sequences():
        for out in engine.step().outputs:
            pieces.append(out.text)
            last = out
    assert last.finish_reason == "stop"
    assert "".join(pieces) == full.text[: full.text.index(stop)]
    assert not any(stop[:3] in p for p in pieces[:-1] if stop[:3] not in full.text[: full.text.index(stop)])


def test_streamed_text_handles_multibyte_characters(make_engine: MakeEngine) -> None:
    engine = make_engine()
    run = generate(engine, "u", chat_prompt(engine, FRANCE), SamplingParams(temperature=0.0, max_tokens=40))
    assert any(ord(c) > 127 for c in run.text)  # "L'Étoile"
    assert "\ufffd" not in run.text
    assert run.text == engine.detokenize(run.tokens)


def test_seed_reproducibility_and_sampler_params(make_engine: MakeEngine) -> None:
    engine = make_engine()
    prompt = chat_prompt(engine, QUESTIONS[3])
    hot = SamplingParams(
        temperature=1.2, top_k=0, top_p=1.0, min_p=0.0, seed=42, max_tokens=24, ignore_eos=True
    )
    a = generate(engine, "a", prompt, hot)
    b = generate(engine, "b", prompt, hot)
    c = generate(engine, "c", prompt, SamplingParams(**{**hot.__dict__, "seed": 43}))
    assert a.tokens == b.tokens
    assert a.tokens != c.tokens
    greedy = generate(engine, "g", prompt, SamplingParams(temperature=0.0, max_tokens=24, ignore_eos=True))
    top1 = generate(
        engine, "k", prompt, SamplingParams(temperature=1.5, top_k=1, seed=7, max_tokens=24, ignore_eos=True)
    )
    assert top1.tokens == greedy.tokens
    penalized = generate(
        engine,
        "p",
        chat_prompt(engine, FRANCE),
        SamplingParams(
            temperature=0.0, max_tokens=40, repeat_penalty=1.5, frequency_penalty=0.5, presence_penalty=0.5
        ),
    )
    plain = generate(engine, "q", chat_prompt(engine, FRANCE), SamplingParams(temperature=0.0, max_tokens=40))
    assert penalized.tokens != plain.tokens
    assert len(set(penalized.tokens)) > len(set(plain.tokens))


def test_grammar_constrains_output(make_engine: MakeEngine) -> None:
    engine = make_engine()
    params = SamplingParams(temperature=0.8, seed=1, max_tokens=10, grammar='root ::= ("yes" | "no") "."')
    run = generate(engine, "g", chat_prompt(engine, "Is the sky blue?"), params)
    assert run.text in {"yes.", "no."}
    with pytest.raises(InvalidRequest):
        engine.admit(SequenceSpec("bad", chat_prompt(engine, "x"), SamplingParams(grammar="root ::= (")))
    assert engine.sequences() == []


def test_logprobs(make_engine: MakeEngine) -> None:
    engine = make_engine()
    engine.admit(
        SequenceSpec(
            "l", chat_prompt(engine, FRANCE), SamplingParams(temperature=0.0, max_tokens=5, logprobs=3)
        )
    )
    outs = []
    while engine.sequences():
        outs.extend(engine.step().outputs)
    for out in outs:
        (lp,) = out.logprobs
        assert lp.token_id == out.token_ids[0] and lp.logprob <= 0.0
        assert len(lp.top) == 3
        assert lp.top[0][1] == pytest.approx(lp.logprob, abs=1e-5)  # greedy picks the most likely
        assert [t[1] for t in lp.top] == sorted((t[1] for t in lp.top), reverse=True)


def test_admission_errors(make_engine: MakeEngine) -> None:
    engine = make_engine(n_ctx=256)
    with pytest.raises(InvalidRequest):
        engine.admit(SequenceSpec("e", (), GREEDY))
    with pytest.raises(InvalidRequest):
        engine.admit(SequenceSpec("big", tuple([1] * 300), GREEDY))
    with pytest.raises(InvalidRequest):
        engine.admit(SequenceSpec("v", (10**7,), GREEDY))
    with pytest.raises(InvalidRequest):
        engine.admit(SequenceSpec("t", (1, 2), SamplingParams(temperature=-1)))
    engine.admit(SequenceSpec("a", (1, 2, 3), GREEDY))
    with pytest.raises(Conflict):
        engine.admit(SequenceSpec("a", (1, 2, 3), GREEDY))
    assert not engine.can_admit(300)


def test_logit_bias_bans_and_forces_tokens(make_engine: MakeEngine) -> None:
    """OpenAI's ``logit_bias`` through llama.cpp's logit-bias sampler: -100 on the token greedy
    decoding picks first keeps it out of the answer; +100 on another forces it."""
    engine = make_engine()
    prompt = chat_prompt(engine, FRANCE)
    plain = generate(engine, "plain", prompt, SamplingParams(temperature=0.0, max_tokens=12))
    first = plain.tokens[0]
    banned = generate(
        engine,
        "banned",
        prompt,
        SamplingParams(temperature=0.0, max_tokens=12, logit_bias=((first, -100.0),)),
    )
    assert first not in banned.tokens and banned.tokens != plain.tokens
    forced_token = engine.tokenize(" banana", add_special=False)[0]
    forced = generate(
        engine,
        "forced",
        prompt,
        SamplingParams(temperature=0.7, seed=1, max_tokens=4, logit_bias=((forced_token, 100.0),)),
    )
    assert forced.tokens == [forced_token] * 4
    with pytest.raises(InvalidRequest, match="vocabulary"):
        engine.admit(
            SequenceSpec("outside", prompt, SamplingParams(logit_bias=((engine.info.n_vocab, 1.0),)))
        )
