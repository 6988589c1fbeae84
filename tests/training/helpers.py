"""Factories for training tests: a tiny LLaMA-shaped GGUF with one adaptable layer."""

from __future__ import annotations

from pathlib import Path

import gguf
import numpy as np

CHATML = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
N_EMBD = 64
N_HEAD = 4
N_HEAD_KV = 2


def write_base(path: Path, *, arch: str = "llama", seed: int = 0) -> Path:
    """A GGUF with the metadata a trainable base has (chat template, heads) and one layer's
    attention projections: q (F32), k (Q8_0), v (F32)."""
    rng = np.random.default_rng(seed)
    w = gguf.GGUFWriter(str(path), arch)
    w.add_context_length(256)
    w.add_embedding_length(N_EMBD)
    w.add_block_count(1)
    w.add_head_count(N_HEAD)
    w.add_head_count_kv(N_HEAD_KV)
    w.add_file_type(gguf.LlamaFileType.ALL_F32)
    w.add_chat_template(CHATML)
    kv = N_EMBD // N_HEAD * N_HEAD_KV
    w.add_tensor("token_embd.weight", rng.random((16, N_EMBD), dtype=np.float32))
    w.add_tensor("blk.0.attn_q.weight", rng.standard_normal((N_EMBD, N_EMBD)).astype(np.float32))
    k = rng.standard_normal((kv, N_EMBD)).astype(np.float32)
    w.add_tensor(
        "blk.0.attn_k.weight",
        gguf.quants.quantize(k, gguf.GGMLQuantizationType.Q8_0),
        raw_dtype=gguf.GGMLQuantizationType.Q8_0,
    )
    w.add_tensor("blk.0.attn_v.weight", rng.standard_normal((kv, N_EMBD)).astype(np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path
