"""LoRA adapters served on the base model's core (llama.cpp engine on SmolLM2): scale 0 is the
base model token for token; base sequences keep their output while adapter sequences run beside
them; KV is never reused across adapter sets (llama-server's bug #26207), and is reused within one."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from llmos.engine.base import LoraAdapter, SamplingParams, SequenceSpec
from llmos.engine.llamacpp import LlamaCppEngine
from llmos.errors import InvalidRequest
from llmos.training.adapter_gguf import HeadCounts, gguf_pairs, write_adapter

from .conftest import chat_prompt, drive, generate

pytestmark = pytest.mark.integration

MakeEngine = Callable[..., LlamaCppEngine]
GREEDY = SamplingParams(temperature=0.0, max_tokens=16, ignore_eos=True)
QUESTION = "Name three colours of the rainbow."


@pytest.fixture(scope="module")
def adapter_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random rank-4 LoRA on every layer's v and o projections of SmolLM2-135M (30 layers,
    576 wide, 3 KV heads of 64): strong enough to change what the model says."""
    rng = np.random.default_rng(7)
    state: dict[str, np.ndarray] = {}
    for layer in range(30):
        for proj, out in (("v_proj", 192), ("o_proj", 576)):
            prefix = f"base_model.model.model.layers.{layer}.self_attn.{proj}"
            state[f"{prefix}.lora_A.weight"] = rng.normal(0, 0.3, (4, 576)).astype(np.float32)
            state[f"{prefix}.lora_B.weight"] = rng.normal(0, 0.3, (out, 4)).astype(np.float32)
    path = tmp_path_factory.mktemp("adapters") / "random-lora.gguf"
    write_adapter(path, gguf_pairs(state, "llama", HeadCounts(9, 3)), architecture="llama", alpha=8, name="r")
    return path


def _spec(seq_id: str, prompt: tuple[int, ...], adapter: Path | None, scale: float = 1.0) -> SequenceSpec:
    adapters = () if adapter is None else (LoraAdapter(str(adapter), scale),)
    return SequenceSpec(seq_id, prompt, GREEDY, adapters=adapters)


def test_scale_zero_is_the_base_model_token_for_token(make_engine: MakeEngine, adapter_file: Path) -> None:
    engine = make_engine(extra={"prefix_cache_slots": 0})
    prompt = chat_prompt(engine, QUESTION)
    base = generate(engine, "base", prompt, GREEDY)
    engine.admit(_spec("zero", prompt, adapter_file, scale=0.0))
    zero = drive(engine)["zero"]
    engine.admit(_spec("one", prompt, adapter_file, scale=1.0))
    one = drive(engine)["one"]
    assert zero.tokens == base.tokens and len(base.tokens) == 16
    assert one.tokens != base.tokens  # the adapter is applied at scale 1
    assert engine.adapters_loaded == [str(adapter_file)]  # loaded once for both scales


def test_base_sequences_keep_their_output_beside_adapter_sequences(
    make_engine: MakeEngine, adapter_file: Path
) -> None:
    """Each adapter set is decoded on its own, so a set's sequences produce the very tokens they
    produce without the other set beside them (llama.cpp is bit-exact for one batch shape)."""
    runs = [("b1", None), ("a1", adapter_file), ("b2", None), ("a2", adapter_file)]
    engine = make_engine()
    prompt = chat_prompt(engine, QUESTION)
    apart: dict[str, list[int]] = {}
    for wanted in (None, adapter_file):
        single = make_engine()
        for seq_id, adapter in runs:
            if adapter == wanted:
                single.admit(_spec(seq_id, prompt, adapter))
        apart |= {seq_id: run.tokens for seq_id, run in drive(single).items()}
    for seq_id, adapter in runs:
        engine.admit(_spec(seq_id, prompt, adapter))
    together = {seq_id: run.tokens for seq_id, run in drive(engine).items()}
    assert together == apart
    assert together["b1"] == together["b2"] != together["a1"] == together["a2"]


def test_prefix_reuse_stays_within_an_adapter_set(make_engine: MakeEngine, adapter_file: Path) -> None:
    for layout in ({}, {"kv_unified": True}):
        engine = make_engine(extra=layout)
        prompt = chat_prompt(engine, QUESTION)
        generate(engine, "base", prompt, GREEDY)  # its KV stays behind as the prefix cache
        first = engine.admit(_spec("a1", prompt, adapter_file))
        assert first.cached_tokens == 0, layout  # the base's KV is not the adapter's
        drive(engine)
        again = engine.admit(_spec("a2", prompt, adapter_file))
        assert again.cached_tokens == len(prompt) - 1, layout  # the adapter's own KV is
        drive(engine)
        other_scale = engine.admit(_spec("half", prompt, adapter_file, scale=0.5))
        assert other_scale.cached_tokens == 0, layout
        drive(engine)
        assert engine.admit(_spec("base2", prompt, None)).cached_tokens == len(prompt) - 1, layout
        drive(engine)


def test_a_file_that_is_no_adapter_is_refused_and_takes_no_slot(
    make_engine: MakeEngine, tmp_path: Path
) -> None:
    engine = make_engine(n_slots=1)
    prompt = chat_prompt(engine, QUESTION)
    junk = tmp_path / "junk.gguf"
    junk.write_bytes(b"not a gguf at all")
    for path in (junk, tmp_path / "missing.gguf"):
        with pytest.raises(InvalidRequest, match="adapter"):
            engine.admit(_spec("x", prompt, path))
    assert engine.can_admit(len(prompt)) and engine.sequences() == []
    assert generate(engine, "ok", prompt, GREEDY).finish == "length"
