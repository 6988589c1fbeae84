"""LoRA weights ↔ llama.cpp's adapter GGUF (what ``llama_adapter_lora_init`` loads).

The file carries ``general.type = adapter``, ``adapter.type = lora``, ``adapter.lora.alpha`` and,
per adapted base tensor ``blk.N.attn_q.weight``, two F32 tensors ``…weight.lora_a`` (shape
``[rank, in]``) and ``…weight.lora_b`` (``[out, rank]``). llama.cpp scales the product by
``alpha / rank`` times the scale a context applies the adapter with.

Architectures whose GGUF conversion permutes the rows of the query and key projections (LLaMA's
rotary layout, undone by transformers when it reads the GGUF) get the same permutation on
``lora_b``, the output side of the product; architectures not listed here are not trainable.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from llmos.errors import InvalidRequest

F32 = npt.NDArray[np.float32]

HF_TO_GGUF: dict[str, str] = {
    "self_attn.q_proj": "attn_q",
    "self_attn.k_proj": "attn_k",
    "self_attn.v_proj": "attn_v",
    "self_attn.o_proj": "attn_output",
    "mlp.gate_proj": "ffn_gate",
    "mlp.up_proj": "ffn_up",
    "mlp.down_proj": "ffn_down",
}

PERMUTES_QK: dict[str, bool] = {"llama": True, "mistral": True, "qwen2": False, "qwen3": False}
"""Trainable GGUF architectures, and whether their conversion permuted Q/K rows."""

_PEFT_KEY = re.compile(
    r"layers\.(\d+)\.(self_attn\.[qkvo]_proj|mlp\.(?:gate|up|down)_proj)\.lora_([AB])\.weight$"
)


@dataclass(frozen=True)
class HeadCounts:
    heads: int
    kv_heads: int


def check_trainable(architecture: str) -> None:
    """Raise InvalidRequest unless adapters for ``architecture`` can be written."""
    if architecture not in PERMUTES_QK:
        raise InvalidRequest(
            f"models of architecture {architecture or 'unknown'!r} are not trainable here; trainable: "
            f"{', '.join(sorted(PERMUTES_QK))}",
            param="model",
        )


def permute_rows(w: F32, heads: int) -> F32:
    """LLaMA's Q/K row order in GGUF (convert_hf_to_gguf's ``permute``) applied to ``w``'s rows."""
    out_dim = w.shape[0]
    return np.ascontiguousarray(
        w.reshape(heads, 2, out_dim // heads // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)
    )


def gguf_pairs(
    peft_state: Mapping[str, F32], architecture: str, heads: HeadCounts
) -> dict[str, tuple[F32, F32]]:
    """PEFT's LoRA state (``…layers.N.self_attn.q_proj.lora_A.weight`` → array) as
    ``blk.N.attn_q.weight`` → (lora_a, lora_b) in llama.cpp's layout."""
    check_trainable(architecture)
    halves: dict[str, dict[str, F32]] = {}
    for key, value in peft_state.items():
        m = _PEFT_KEY.search(key)
        if m is None:
            raise InvalidRequest(
                f"cannot map adapter tensor {key!r} to llama.cpp's names", param="target_modules"
            )
        layer, module, half = m.groups()
        halves.setdefault(f"blk.{layer}.{HF_TO_GGUF[module]}.weight", {})[half] = np.asarray(
            value, np.float32
        )
    pairs: dict[str, tuple[F32, F32]] = {}
    for name, h in halves.items():
        a, b = h["A"], h["B"]
        if PERMUTES_QK[architecture] and ".attn_q." in name:
            b = permute_rows(b, heads.heads)
        elif PERMUTES_QK[architecture] and ".attn_k." in name:
            b = permute_rows(b, heads.kv_heads)
        pairs[name] = (a, b)
    return pairs


def write_adapter(
    path: Path, pairs: Mapping[str, tuple[F32, F32]], *, architecture: str, alpha: float, name: str
) -> None:
    """Write the adapter GGUF to ``path`` (the caller renames it into place)."""
    import gguf

    writer = gguf.GGUFWriter(str(path), architecture)
    writer.add_type(gguf.GGUFType.ADAPTER)
    writer.add_name(name)
    writer.add_string(gguf.Keys.Adapter.TYPE, "lora")
    writer.add_float32(gguf.Keys.Adapter.LORA_ALPHA, float(alpha))
    for tensor, (a, b) in sorted(pairs.items()):
        writer.add_tensor(f"{tensor}.lora_a", np.ascontiguousarray(a, np.float32))
        writer.add_tensor(f"{tensor}.lora_b", np.ascontiguousarray(b, np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


@dataclass(frozen=True)
class Adapter:
    """An adapter GGUF read back: its architecture, alpha and (lora_a, lora_b) per base tensor."""

    architecture: str
    alpha: float
    pairs: dict[str, tuple[F32, F32]]

    def scale(self, tensor: str) -> float:
        a, _ = self.pairs[tensor]
        return float(self.alpha / a.shape[0])


def read_adapter(path: Path) -> Adapter:
    """Raises InvalidRequest when ``path`` is not a LoRA adapter GGUF."""
    import gguf

    reader = gguf.GGUFReader(str(path))

    def field(key: str) -> object:
        f = reader.fields.get(key)
        return f.contents() if f is not None else None

    if field("general.type") != "adapter" or field("adapter.type") != "lora":
        raise InvalidRequest(f"{path.name} is not a LoRA adapter GGUF", param="model")
    halves: dict[str, dict[str, F32]] = {}
    for t in reader.tensors:
        base, _, half = t.name.rpartition(".lora_")
        shape = tuple(int(x) for x in reversed(t.shape))
        halves.setdefault(base, {})[half] = np.asarray(t.data, np.float32).reshape(shape)
    alpha = field("adapter.lora.alpha")
    return Adapter(
        architecture=str(field("general.architecture")),
        alpha=float(alpha) if isinstance(alpha, int | float) else 0.0,
        pairs={k: (v["a"], v["b"]) for k, v in halves.items()},
    )
