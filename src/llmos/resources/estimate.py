"""Estimate a model's resident memory before loading it.

The formula (documented in ``docs/resources.md``; constants calibrated on llama.cpp as
vendored by llama-cpp-python 0.3.36 with the engine defaults n_ctx 8192, 16 slots, n_batch 512):

* **weights**: the sum of the GGUF's tensor bytes. They are mmap'd, but every decode touches
  every weight, so they count as resident.
* **vocab**: per-token tables: llama.cpp's tokenizer and the engine's sampling/detokenization
  state, ``VOCAB_BYTES_PER_TOKEN × n_vocab + VOCAB_BYTES_PER_MERGE × n_merges``.
* **kv_cache**: ``cells × Σ_layers n_head_kv × (head_dim_k + head_dim_v) × bytes_per_element``
  with ``cells = n_ctx`` (shared by all slots). Sliding-window layers (gemma2/3, cohere2, llama4)
  hold ``n_ctx`` cells too when ``swa_full`` (llama.cpp's default), else about ``n_swa + n_batch``
  per slot.
* **compute**: logits for at most ``min(n_batch, n_slots × outputs_per_slot)`` outputs, twice
  (the graph's result tensor and the host output buffer), ``× n_vocab × 4`` bytes; plus
  activation scratch ``n_batch × (4 × n_embd + 2 × n_ff) × 4`` bytes. llama.cpp *reserves* a
  compute buffer sized for ``n_batch`` outputs, but pages that are never written are not resident.
* **runtime**: the worker process itself (Python, llama.cpp, llmos imports: ~43 MiB before a
  load) plus its threads and allocator arenas once decoding.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from llmos.config import CpuWeightsMode, EngineConfig
from llmos.engine.cpu_weights import conversion_target, converted_tensor_bytes
from llmos.engine.gguf_header import ArrayInfo, GGUFHeader, read_gguf_header
from llmos.errors import InvalidModelFile

MiB = 1024 * 1024

RUNTIME_OVERHEAD_BYTES = 64 * MiB
"""A worker process without its model: ~43 MiB idle (measured), plus threads and arenas when decoding."""
VOCAB_BYTES_PER_TOKEN = 180 + 160
"""llama.cpp's tokenizer (~180 B/token, fitted on gemma3's 262k tokens and smollm2's 49k) plus the
llmos worker's per-token sampling and detokenization state (~160 B/token, measured on both)."""
VOCAB_BYTES_PER_MERGE = 230
"""BPE merges in llama.cpp's tokenizer (smollm2: 49k merges)."""

KV_TYPE_BYTES: dict[str, float] = {
    "f32": 4.0,
    "f16": 2.0,
    "bf16": 2.0,
    "q8_0": 34 / 32,
    "q5_1": 24 / 32,
    "q5_0": 22 / 32,
    "q4_1": 20 / 32,
    "q4_0": 18 / 32,
    "iq4_nl": 18 / 32,
}

SWA_PATTERNS: dict[str, int] = {
    "gemma2": 2,
    "gemma3": 6,
    "gemma3n": 5,
    "cohere2": 4,
    "llama4": 4,
    "exaone4": 4,
}
"""Architectures whose sliding-window layers llama.cpp lays out as "every p-th layer is global,
the others are SWA" (the pattern is hard-coded there, not in the GGUF header)."""

SHAPE_METADATA_KEY = "resource_shape"
"""Where :meth:`ModelShape.to_metadata` sits inside ``Manifest.metadata``."""

Device = str
"""A memory pool: ``cpu`` (RAM) or ``cuda:<index>`` (one GPU's VRAM)."""


@dataclass(frozen=True)
class ModelShape:
    """The header facts a memory estimate needs; storable in ``Manifest.metadata``."""

    architecture: str
    n_layer: int
    n_embd: int
    n_ff: int
    n_vocab: int
    n_merges: int
    tensor_bytes: int
    kv_width_full: int
    """Σ over full-attention layers of n_head_kv × (head_dim_k + head_dim_v)."""
    kv_width_swa: int = 0
    """The same sum over sliding-window layers."""
    n_swa: int = 0
    """Sliding window, in tokens (0: none)."""
    n_ctx_train: int = 0
    cpu_tensor_bytes: int = 0
    """``tensor_bytes`` once the engine re-encodes the file for the CPU (``cpu_weights`` ``auto`` or
    ``converted``, see :mod:`llmos.engine.cpu_weights`); 0 when it maps the file as it is."""

    def to_metadata(self) -> dict[str, Any]:
        return {SHAPE_METADATA_KEY: asdict(self)}

    @classmethod
    def from_metadata(cls, metadata: Mapping[str, Any]) -> ModelShape | None:
        """The shape stored by :meth:`to_metadata`, or None when absent or malformed."""
        raw = metadata.get(SHAPE_METADATA_KEY)
        if not isinstance(raw, Mapping):
            return None
        try:
            ints = {k: int(v) for k, v in raw.items() if k != "architecture"}
            return cls(architecture=str(raw["architecture"]), **ints)
        except (KeyError, TypeError, ValueError):
            return None


@dataclass(frozen=True)
class EstimateParams:
    """How the model will be loaded: the engine's context, slots and batch, KV types, placement."""

    n_ctx: int = 8192
    n_slots: int = 16
    n_batch: int = 512
    outputs_per_slot: int = 1
    """Logit rows one slot asks for per step (1 for generation; more for prompt logprobs)."""
    type_k: str = "f16"
    type_v: str = "f16"
    swa_full: bool = True
    kv_unified: bool = True
    """One KV buffer shared by all sequences (what the llmos llama.cpp engine creates)."""
    embedding: bool = False
    device: Device = "cpu"
    gpu_layers: int = 0
    """Layers offloaded to ``device`` when it is a GPU; ≥ n_layer + 1 offloads everything."""
    runtime_overhead: int = RUNTIME_OVERHEAD_BYTES
    cpu_weights: CpuWeightsMode = "auto"
    """Whether the engine may load a CPU re-encoding of the weights (``EngineConfig.cpu_weights``)."""

    @classmethod
    def from_engine_config(cls, engine: EngineConfig, **overrides: Any) -> EstimateParams:
        """The parameters the engine will load with (``overrides``: KV types, placement...)."""
        overrides.setdefault("cpu_weights", engine.cpu_weights)
        return cls(n_ctx=engine.n_ctx, n_slots=engine.n_slots, n_batch=engine.n_batch, **overrides)


@dataclass(frozen=True)
class MemoryEstimate:
    """Bytes a loaded model is expected to hold, by part."""

    weights: int
    vocab: int
    kv_cache: int
    compute: int
    runtime: int
    device: Device = "cpu"
    vram: int = 0
    """The part of the total held in ``device``'s memory (0 on CPU)."""

    @property
    def total(self) -> int:
        return self.weights + self.vocab + self.kv_cache + self.compute + self.runtime

    @property
    def ram(self) -> int:
        """The part held in host RAM."""
        return self.total - self.vram

    def charges(self) -> dict[Device, int]:
        """Bytes this model takes from each memory pool."""
        out: dict[Device, int] = {"cpu": self.ram}
        if self.device != "cpu" and self.vram:
            out[self.device] = self.vram
        return out

    def describe(self) -> str:
        parts = (
            f"weights {_mib(self.weights)}, KV cache {_mib(self.kv_cache)}, compute {_mib(self.compute)}, "
            f"vocab {_mib(self.vocab)}, runtime {_mib(self.runtime)}"
        )
        return f"{_mib(self.total)} ({parts})"

    @classmethod
    def fixed(cls, total: int, device: Device = "cpu") -> MemoryEstimate:
        """An estimate known only as a total (tests, non-GGUF models)."""
        return cls(
            weights=total,
            vocab=0,
            kv_cache=0,
            compute=0,
            runtime=0,
            device=device,
            vram=total if device != "cpu" else 0,
        )


def _mib(n: int) -> str:
    return f"{n / MiB:.0f} MiB"


def _int(fields: Mapping[str, Any], key: str, default: int | None = None) -> int:
    value = fields.get(key, default)
    if isinstance(value, ArrayInfo):
        if value.values:
            return int(max(value.values))
        value = default
    if value is None:
        raise InvalidModelFile(f"GGUF header lacks {key}")
    return int(value)


def _per_layer(fields: Mapping[str, Any], key: str, n_layer: int, default: int) -> list[int]:
    value = fields.get(key, default)
    if isinstance(value, ArrayInfo):
        if value.values and len(value.values) == n_layer:
            return [int(v) for v in value.values]
        return [default] * n_layer
    return [int(value)] * n_layer


def _swa_layers(fields: Mapping[str, Any], arch: str, n_layer: int) -> list[bool]:
    if int(fields.get(f"{arch}.attention.sliding_window", 0) or 0) <= 0:
        return [False] * n_layer
    pattern = fields.get(f"{arch}.attention.sliding_window_pattern")
    if isinstance(pattern, ArrayInfo) and pattern.values and len(pattern.values) == n_layer:
        return [bool(v) for v in pattern.values]
    period = int(pattern) if isinstance(pattern, int) and pattern > 0 else SWA_PATTERNS.get(arch, 0)
    if period <= 1:
        # Unknown layout: count every layer as full attention (over-estimates, never under).
        return [False] * n_layer
    return [il % period < period - 1 for il in range(n_layer)]


def shape_from_header(header: GGUFHeader) -> ModelShape:
    """The :class:`ModelShape` of a parsed GGUF header. Raises InvalidModelFile if keys are missing."""
    f = header.fields
    arch = f.get("general.architecture")
    if not isinstance(arch, str) or not arch:
        raise InvalidModelFile("GGUF header lacks general.architecture")
    n_layer = _int(f, f"{arch}.block_count")
    n_embd = _int(f, f"{arch}.embedding_length")
    n_ff = _int(f, f"{arch}.feed_forward_length", 0)
    n_head = _per_layer(f, f"{arch}.attention.head_count", n_layer, 0)
    n_head_kv = _per_layer(f, f"{arch}.attention.head_count_kv", n_layer, -1)
    n_head_kv = [kv if kv >= 0 else h for kv, h in zip(n_head_kv, n_head, strict=True)]
    max_head = max(n_head) if n_head else 0
    default_dim = n_embd // max_head if max_head else 0
    dim_k = _int(f, f"{arch}.attention.key_length", default_dim)
    dim_v = _int(f, f"{arch}.attention.value_length", dim_k)
    swa = _swa_layers(f, arch, n_layer)
    widths = [kv * (dim_k + dim_v) for kv in n_head_kv]
    tokens = f.get("tokenizer.ggml.tokens")
    merges = f.get("tokenizer.ggml.merges")
    n_vocab = tokens.length if isinstance(tokens, ArrayInfo) else _int(f, f"{arch}.vocab_size", 0)
    return ModelShape(
        architecture=arch,
        n_layer=n_layer,
        n_embd=n_embd,
        n_ff=n_ff,
        n_vocab=n_vocab,
        n_merges=merges.length if isinstance(merges, ArrayInfo) else 0,
        tensor_bytes=header.tensor_bytes,
        kv_width_full=sum(w for w, s in zip(widths, swa, strict=True) if not s),
        kv_width_swa=sum(w for w, s in zip(widths, swa, strict=True) if s),
        n_swa=int(f.get(f"{arch}.attention.sliding_window", 0) or 0) if any(swa) else 0,
        n_ctx_train=_int(f, f"{arch}.context_length", 0),
        cpu_tensor_bytes=_cpu_tensor_bytes(header),
    )


def _cpu_tensor_bytes(header: GGUFHeader) -> int:
    file_type = header.fields.get("general.file_type")
    if not isinstance(file_type, int) or conversion_target(file_type, "auto") is None:
        return 0
    return converted_tensor_bytes(header.elements_by_type, header.bytes_by_type)


def read_shape(path: Path) -> ModelShape:
    """Read the shape of the GGUF at ``path`` from its header (fast: array bodies are skipped)."""
    return shape_from_header(read_gguf_header(path))


def _pad(n: int, to: int) -> int:
    return (n + to - 1) // to * to


def kv_cells(shape: ModelShape, params: EstimateParams) -> tuple[int, int]:
    """(cells of full-attention layers, cells of sliding-window layers), over all slots."""
    full = params.n_ctx
    if not shape.n_swa or params.swa_full:
        return full, full
    if params.kv_unified:
        return full, min(full, _pad(shape.n_swa * params.n_slots + params.n_batch, 256))
    per_slot = max(1, params.n_ctx // params.n_slots)
    return full, params.n_slots * min(per_slot, _pad(shape.n_swa + params.n_batch, 256))


def estimate_memory(shape: ModelShape, params: EstimateParams) -> MemoryEstimate:
    """The expected resident bytes of ``shape`` loaded with ``params``. Raises InvalidRequest
    (InvalidModelFile) for an unknown KV cache type."""
    try:
        bytes_k, bytes_v = KV_TYPE_BYTES[params.type_k], KV_TYPE_BYTES[params.type_v]
    except KeyError as exc:
        raise InvalidModelFile(
            f"unknown KV cache type {exc.args[0]!r}; known: {', '.join(KV_TYPE_BYTES)}"
        ) from exc
    per_elem = (bytes_k + bytes_v) / 2
    cells_full, cells_swa = kv_cells(shape, params)
    kv = int(per_elem * (cells_full * shape.kv_width_full + cells_swa * shape.kv_width_swa))
    outputs = min(params.n_batch, params.n_slots * max(1, params.outputs_per_slot))
    row = shape.n_embd if params.embedding else shape.n_vocab
    compute = 2 * outputs * row * 4 + params.n_batch * (4 * shape.n_embd + 2 * shape.n_ff) * 4
    vocab = VOCAB_BYTES_PER_TOKEN * shape.n_vocab + VOCAB_BYTES_PER_MERGE * shape.n_merges
    vram = 0
    weights = shape.tensor_bytes
    if params.device != "cpu" and params.gpu_layers > 0:
        # llama.cpp offloads whole layers (plus the output layer as layer n_layer).
        share = min(1.0, params.gpu_layers / (shape.n_layer + 1))
        vram = int(share * (shape.tensor_bytes + kv)) + compute
    elif params.cpu_weights != "native" and shape.cpu_tensor_bytes:
        weights = shape.cpu_tensor_bytes
        if params.cpu_weights == "auto" and not params.embedding:
            # the solo lane: the file as stored beside its re-encoding, and one slot's KV
            weights += shape.tensor_bytes
            kv += kv // max(1, params.n_slots)
    return MemoryEstimate(
        weights=weights,
        vocab=vocab,
        kv_cache=kv,
        compute=compute,
        runtime=params.runtime_overhead,
        device=params.device if vram else "cpu",
        vram=vram,
    )


def estimate_gguf(
    path: Path, params: EstimateParams, metadata: Mapping[str, Any] | None = None
) -> MemoryEstimate:
    """Estimate from a stored shape in ``metadata`` (a Manifest's), else from the file's header."""
    shape = ModelShape.from_metadata(metadata) if metadata else None
    return estimate_memory(shape or read_shape(path), params)
