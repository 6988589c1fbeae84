"""The deterministic fake engine keeps the engine protocol's promises."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from llmos.engine.base import Engine, LoadSpec, SamplingParams, SequenceSpec, StepPlan
from llmos.engine.fake import BOS, EOS, FakeEngine
from llmos.errors import EngineDeadError, InvalidRequest


def fake(**extra: object) -> FakeEngine:
    n_slots = int(extra.pop("n_slots", 4))  # type: ignore[call-overload]
    n_ctx = int(extra.pop("n_ctx", 1024))  # type: ignore[call-overload]
    n_batch = int(extra.pop("n_batch", 64))  # type: ignore[call-overload]
    e = FakeEngine()
    e.load(LoadSpec(model_path=Path("x.gguf"), n_slots=n_slots, n_ctx=n_ctx, n_batch=n_batch, extra=extra))
    return e


def spec(seq_id: str, prompt: str, e: FakeEngine, **params: object) -> SequenceSpec:
    return SequenceSpec(seq_id=seq_id, prompt=tuple(e.tokenize(prompt)), params=SamplingParams(**params))  # type: ignore[arg-type]


def run(e: FakeEngine, plan_fn: object = None, max_steps: int = 1000) -> dict[str, list]:  # type: ignore[type-arg]
    outs: dict[str, list] = {}  # type: ignore[type-arg]
    for _ in range(max_steps):
        if not e.sequences():
            return outs
        for o in e.step().outputs:
            outs.setdefault(o.seq_id, []).append(o)
    raise AssertionError("did not finish")


def text(outs: list) -> str:  # type: ignore[type-arg]
    return "".join(o.text for o in outs)


def test_is_an_engine_and_constructible_without_arguments() -> None:
    e = FakeEngine()
    info = e.load(LoadSpec(model_path=Path("m.gguf")))
    assert isinstance(e, Engine)
    assert info.backend == "fake" and info.n_slots == 16 and EOS in info.eos_token_ids


def test_tokenize_is_reversible_and_parses_specials() -> None:
    e = fake()
    s = "héllo <|im_start|>user\nwörld ✓"
    toks = e.tokenize(s, add_special=False)
    assert e.detokenize(toks) == s
    assert e.tokenize("a")[0] == BOS
    assert 3 in toks  # <|im_start|> parsed as one special token
    assert 3 not in e.tokenize(s, add_special=False, parse_special=False)


def test_render_chat_is_chatml() -> None:
    e = fake()
    out = e.render_chat([{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"}])
    assert (
        out
        == "<|im_start|>system\nbe brief<|im_end|>\n<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"
    )


def test_generation_is_deterministic_and_honours_max_tokens() -> None:
    a, b = fake(), fake()
    for e in (a, b):
        e.admit(spec("s", "hello", e, temperature=0.0, max_tokens=7))
    oa, ob = run(a)["s"], run(b)["s"]
    assert text(oa) == text(ob) and len(text(oa)) == 7
    assert oa[-1].finish_reason == "length" and oa[-1].completion_tokens == 7


def test_seed_matters_only_when_sampling() -> None:
    texts = set()
    for seed in (1, 2, 3):
        e = fake()
        e.admit(spec("s", "hello", e, temperature=0.0, seed=seed, max_tokens=12))
        texts.add(text(run(e)["s"]))
    assert len(texts) == 1
    sampled = set()
    for seed in (1, 2, 3):
        e = fake()
        e.admit(spec("s", "hello", e, temperature=0.9, seed=seed, max_tokens=12))
        sampled.add(text(run(e)["s"]))
    assert len(sampled) == 3


def test_stop_string_is_cut_and_never_leaks_partially() -> None:
    e = fake()
    e.admit(spec("s", "hello", e, temperature=0.0, max_tokens=200))
    full = text(run(e)["s"])
    stop = full[20:23]
    e.admit(spec("s", "hello", e, temperature=0.0, max_tokens=200, stop=(stop,)))
    outs = run(e)["s"]
    assert text(outs) == full[: full.index(stop)]
    assert outs[-1].finish_reason == "stop"


def test_eos_after_and_ignore_eos() -> None:
    e = fake(eos_after=3)
    e.admit(spec("a", "x", e, temperature=0.0, max_tokens=10))
    e.admit(spec("b", "y", e, temperature=0.0, max_tokens=10, ignore_eos=True))
    outs = run(e)
    assert outs["a"][-1].finish_reason == "stop" and len(text(outs["a"])) == 3
    assert outs["b"][-1].finish_reason == "length" and len(text(outs["b"])) == 10


def test_logprobs_top_k() -> None:
    e = fake()
    e.admit(spec("s", "x", e, temperature=0.0, max_tokens=3, logprobs=4))
    lps = [lp for o in run(e)["s"] for lp in o.logprobs]
    assert len(lps) == 3
    for lp in lps:
        assert lp.logprob < 0 and len(lp.top) == 4 and lp.top[0][0] == lp.token
        assert [p for _, p in lp.top] == sorted((p for _, p in lp.top), reverse=True)


def test_slots_and_kv_cells_are_accounted() -> None:
    e = fake(n_slots=2, n_ctx=40)
    assert e.can_admit(30)
    e.admit(SequenceSpec(seq_id="a", prompt=tuple(range(20, 50)), params=SamplingParams(max_tokens=5)))
    assert not e.can_admit(11)  # only 10 cells left
    assert e.can_admit(10)
    e.admit(SequenceSpec(seq_id="b", prompt=tuple(range(60, 65)), params=SamplingParams(max_tokens=5)))
    assert not e.can_admit(1)  # no slot
    assert e.health().slots_used == 2
    e.abort("a")
    assert e.can_admit(30) and e.health().slots_used == 1


def test_step_plan_chunks_prefill_within_n_batch() -> None:
    e = fake(n_batch=16)
    e.admit(SequenceSpec(seq_id="a", prompt=tuple(range(20, 60)), params=SamplingParams(max_tokens=2)))
    r = e.step(StepPlan(tokens={"a": 16}))
    assert r.n_tokens == 16 and r.outputs[0].token_ids == ()
    assert e.sequences()[0].prompt_remaining == 24
    with pytest.raises(InvalidRequest):
        e.step(StepPlan(tokens={"a": 17}))
    e.step(StepPlan(tokens={"a": 16}))
    r = e.step(StepPlan(tokens={"a": 16}))  # only 8 left: the chunk is clipped, the first token sampled
    assert r.n_tokens == 8 and len(r.outputs[0].token_ids) == 1
    assert e.sequences()[0].phase == "decode"


def test_prefix_reuse_reports_cached_tokens() -> None:
    e = fake()
    system = "<|im_start|>system\nyou are terse<|im_end|>\n"
    a = e.admit(spec("a", system + "one", e, max_tokens=3))
    assert a.cached_tokens == 0
    e.step()
    b = e.admit(spec("b", system + "two", e, max_tokens=3))
    assert b.cached_tokens == len(e.tokenize(system))
    assert e.sequences()[1].prompt_remaining == len(e.tokenize("two", add_special=False))


def test_preempt_and_restore_continue_identically() -> None:
    ref = fake()
    ref.admit(spec("s", "hello world", ref, temperature=0.0, max_tokens=30))
    expected = text(run(ref)["s"])

    e = fake(n_slots=1)
    e.admit(spec("s", "hello world", e, temperature=0.0, max_tokens=30))
    got = ""
    for _ in range(10):
        got += "".join(o.text for o in e.step().outputs)
    snap = e.preempt("s")
    assert not e.sequences() and e.can_admit(100)
    assert isinstance(snap.state, bytes) and len(snap.generated) == 10
    e.restore(snap)
    got += text(run(e)["s"])
    assert got == expected


def test_embed_is_deterministic_unit_vectors() -> None:
    e = fake(embedding_dim=48)
    a, b, a2 = e.embed(["alpha", "beta", "alpha"])
    assert a == a2 and a != b and len(a) == 48
    assert math.isclose(sum(x * x for x in a), 1.0, rel_tol=1e-9)


def test_kill_makes_every_call_raise_engine_dead() -> None:
    e = fake(die_after_steps=2)
    e.admit(spec("s", "hello", e, max_tokens=50))
    e.step()
    e.step()
    with pytest.raises(EngineDeadError):
        e.step()
    assert not e.health().ok
    with pytest.raises(EngineDeadError):
        e.can_admit(1)


def test_failed_sequence_reports_error() -> None:
    e = fake()
    e.admit(spec("s", "hello", e, max_tokens=50))
    e.fail_sequence("s", "boom")
    out = e.step().outputs[0]
    assert out.finish_reason == "error" and out.error == "boom"
    assert not e.sequences()


def test_step_cost_spends_the_injected_sleep() -> None:
    spent: list[float] = []
    e = FakeEngine(sleep=spent.append)
    e.load(LoadSpec(model_path=Path("m"), extra={"step_cost_s": 0.5, "token_cost_s": 0.25}))
    e.admit(SequenceSpec(seq_id="s", prompt=(20, 21, 22, 23), params=SamplingParams(max_tokens=2)))
    r = e.step()
    assert spent == [0.5 + 0.25 * 4] and r.elapsed_s >= 1.5


def test_kv_exhaustion_preempts_the_newest_sequence() -> None:
    e = fake(n_slots=2, n_ctx=24)
    e.admit(SequenceSpec(seq_id="old", prompt=tuple(range(20, 30)), params=SamplingParams(max_tokens=50)))
    e.admit(SequenceSpec(seq_id="new", prompt=tuple(range(40, 50)), params=SamplingParams(max_tokens=50)))
    preempted = []
    for _ in range(6):
        r = e.step()
        preempted += [p.spec.seq_id for p in r.preempted]
    assert preempted == ["new"]
    assert [s.seq_id for s in e.sequences()] == ["old"]
