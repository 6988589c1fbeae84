"""The adapter GGUF and the merge, checked numerically against the LoRA formula."""

from __future__ import annotations

from pathlib import Path

import gguf
import numpy as np
import pytest

from llmos.errors import InvalidRequest
from llmos.training.adapter_gguf import HeadCounts, gguf_pairs, permute_rows, read_adapter, write_adapter
from llmos.training.merge import merge_adapter

from .helpers import N_EMBD, N_HEAD, N_HEAD_KV, write_base

RANK = 4
KV = N_EMBD // N_HEAD * N_HEAD_KV


def _peft_state(rng: np.random.Generator) -> dict[str, np.ndarray]:
    p = "base_model.model.model.layers.0."
    return {
        f"{p}self_attn.q_proj.lora_A.weight": rng.standard_normal((RANK, N_EMBD)).astype(np.float32),
        f"{p}self_attn.q_proj.lora_B.weight": rng.standard_normal((N_EMBD, RANK)).astype(np.float32),
        f"{p}self_attn.k_proj.lora_A.weight": rng.standard_normal((RANK, N_EMBD)).astype(np.float32),
        f"{p}self_attn.k_proj.lora_B.weight": rng.standard_normal((KV, RANK)).astype(np.float32),
        f"{p}self_attn.v_proj.lora_A.weight": rng.standard_normal((RANK, N_EMBD)).astype(np.float32),
        f"{p}self_attn.v_proj.lora_B.weight": rng.standard_normal((KV, RANK)).astype(np.float32),
    }


def _tensor(path: Path, name: str) -> np.ndarray:
    reader = gguf.GGUFReader(str(path))
    t = next(t for t in reader.tensors if t.name == name)
    shape = tuple(int(x) for x in reversed(t.shape))
    return gguf.quants.dequantize(t.data, t.tensor_type).astype(np.float32).reshape(shape)


def test_peft_names_map_to_llama_cpp_and_qk_rows_are_permuted() -> None:
    state = _peft_state(np.random.default_rng(0))
    pairs = gguf_pairs(state, "llama", HeadCounts(N_HEAD, N_HEAD_KV))
    assert set(pairs) == {"blk.0.attn_q.weight", "blk.0.attn_k.weight", "blk.0.attn_v.weight"}
    b_q = state["base_model.model.model.layers.0.self_attn.q_proj.lora_B.weight"]
    assert np.array_equal(pairs["blk.0.attn_q.weight"][1], permute_rows(b_q, N_HEAD))
    assert not np.array_equal(pairs["blk.0.attn_q.weight"][1], b_q)
    b_v = state["base_model.model.model.layers.0.self_attn.v_proj.lora_B.weight"]
    assert np.array_equal(pairs["blk.0.attn_v.weight"][1], b_v)  # v is not permuted
    assert not np.array_equal(
        gguf_pairs(state, "qwen2", HeadCounts(N_HEAD, N_HEAD_KV))["blk.0.attn_q.weight"][1],
        pairs["blk.0.attn_q.weight"][1],
    )


def test_untrainable_architecture_is_refused() -> None:
    with pytest.raises(InvalidRequest, match="not trainable"):
        gguf_pairs(_peft_state(np.random.default_rng(0)), "gemma3", HeadCounts(N_HEAD, N_HEAD_KV))


def test_adapter_round_trips(tmp_path: Path) -> None:
    pairs = gguf_pairs(_peft_state(np.random.default_rng(1)), "llama", HeadCounts(N_HEAD, N_HEAD_KV))
    write_adapter(tmp_path / "a.gguf", pairs, architecture="llama", alpha=8.0, name="t")
    back = read_adapter(tmp_path / "a.gguf")
    assert back.architecture == "llama"
    assert back.alpha == 8.0
    for name, (a, b) in pairs.items():
        assert np.array_equal(back.pairs[name][0], a)
        assert np.array_equal(back.pairs[name][1], b)
    assert back.scale("blk.0.attn_q.weight") == 8.0 / RANK


def test_merge_adds_the_scaled_product_and_copies_the_rest(tmp_path: Path) -> None:
    base = write_base(tmp_path / "base.gguf")
    pairs = gguf_pairs(_peft_state(np.random.default_rng(2)), "llama", HeadCounts(N_HEAD, N_HEAD_KV))
    write_adapter(tmp_path / "a.gguf", pairs, architecture="llama", alpha=2.0, name="t")
    out = merge_adapter(base, tmp_path / "a.gguf", tmp_path / "out" / "merged.gguf")
    for name in ("blk.0.attn_q.weight", "blk.0.attn_k.weight", "blk.0.attn_v.weight"):
        a, b = pairs[name]
        expected = _tensor(base, name) + (2.0 / RANK) * (b @ a)
        assert np.allclose(_tensor(out, name), expected, atol=0.05 * np.abs(expected).max())
    assert np.array_equal(_tensor(out, "token_embd.weight"), _tensor(base, "token_embd.weight"))
    fields = gguf.GGUFReader(str(out)).fields
    assert (
        fields["tokenizer.chat_template"].contents()
        == gguf.GGUFReader(str(base)).fields["tokenizer.chat_template"].contents()
    )
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["merged.gguf"]  # no temp left


def test_merge_at_scale_zero_is_the_base(tmp_path: Path) -> None:
    base = write_base(tmp_path / "base.gguf")
    pairs = gguf_pairs(_peft_state(np.random.default_rng(3)), "llama", HeadCounts(N_HEAD, N_HEAD_KV))
    write_adapter(tmp_path / "a.gguf", pairs, architecture="llama", alpha=2.0, name="t")
    out = merge_adapter(base, tmp_path / "a.gguf", tmp_path / "m.gguf", scale=0.0)
    assert np.array_equal(_tensor(out, "blk.0.attn_v.weight"), _tensor(base, "blk.0.attn_v.weight"))


def test_merge_refuses_an_adapter_of_another_shape_and_leaves_nothing(tmp_path: Path) -> None:
    base = write_base(tmp_path / "base.gguf")
    rng = np.random.default_rng(4)
    pairs = {
        "blk.0.attn_v.weight": (
            rng.random((RANK, N_EMBD), dtype=np.float32),
            rng.random((7, RANK), dtype=np.float32),
        )
    }
    write_adapter(tmp_path / "a.gguf", pairs, architecture="llama", alpha=2.0, name="t")
    (tmp_path / "out").mkdir()
    with pytest.raises(InvalidRequest, match="adapter tensor"):
        merge_adapter(base, tmp_path / "a.gguf", tmp_path / "out" / "m.gguf")
    assert list((tmp_path / "out").iterdir()) == []
