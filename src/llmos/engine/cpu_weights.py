"""CPU weight formats: which quantized GGUF files the llama.cpp engine re-encodes, once, into a
format whose matrix products llama.cpp computes in batches.

llama.cpp's CPU backend has batched matrix kernels (llamafile's tinyBLAS, the repacked
Q4_0 / IQ4_NL / Q4_K layouts) for some weight types only. For the legacy "_1" types (Q4_1, Q5_1)
a batch of 16 sequences still runs one vector dot product per weight row per sequence, so
batching saves memory traffic but almost no arithmetic: on a 2-core AVX2 machine the engine
decodes 16 sequences of SmolLM2-135M at ~163 tok/s from its Q4_1 file and ~240 tok/s from the
same weights re-encoded as Q8_0 (``bench/results/engine_throughput.md``). Q8_0 keeps a 255-level
scale per block of 32 weights where Q4_1 has 16 levels; the re-encoding moves next-token
distributions about as much as llama.cpp's own batch-shape noise does, not token-identically
(``bench/results/cpu_weights_fidelity.md``).

This module is the policy, free of llama.cpp (the header reader and the memory estimator use
it); ``llamacpp/requantize.py`` does the conversion and caches its result.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import cast, get_args

from llmos.config import CpuWeightsMode
from llmos.errors import InvalidRequest

CPU_WEIGHT_MODES: tuple[str, ...] = get_args(CpuWeightsMode)

# llama.cpp's ``llama_ftype`` (a whole file's type, ``general.file_type``) ...
FTYPE_MOSTLY_Q4_1 = 3
FTYPE_MOSTLY_Q8_0 = 7
FTYPE_MOSTLY_Q5_1 = 9
# ... and ggml's per-tensor types.
GGML_TYPE_Q4_1 = 3
GGML_TYPE_Q5_1 = 7
GGML_TYPE_Q8_0 = 8
Q8_0_BLOCK, Q8_0_BLOCK_BYTES = 32, 34

CONVERT_FILE_TYPES: dict[int, int] = {
    FTYPE_MOSTLY_Q4_1: FTYPE_MOSTLY_Q8_0,
    FTYPE_MOSTLY_Q5_1: FTYPE_MOSTLY_Q8_0,
}
"""File type → the file type the engine loads instead on the CPU."""

CONVERTED_TENSOR_TYPES: frozenset[int] = frozenset({GGML_TYPE_Q4_1, GGML_TYPE_Q5_1})
"""Tensor types a conversion re-encodes as Q8_0 (others keep their type)."""

FILE_TYPE_NAMES: dict[int, str] = {
    0: "f32",
    1: "f16",
    2: "q4_0",
    FTYPE_MOSTLY_Q4_1: "q4_1",
    FTYPE_MOSTLY_Q8_0: "q8_0",
    8: "q5_0",
    FTYPE_MOSTLY_Q5_1: "q5_1",
    10: "q2_k",
    11: "q3_k_s",
    12: "q3_k_m",
    13: "q3_k_l",
    14: "q4_k_s",
    15: "q4_k_m",
    16: "q5_k_s",
    17: "q5_k_m",
    18: "q6_k",
    32: "bf16",
}
"""llama.cpp's ``general.file_type`` values (``llama_ftype``), as ``llmos ps`` names them."""


def parse_mode(raw: object) -> CpuWeightsMode:
    """``auto``, ``converted`` or ``native`` (case-insensitive). Raises InvalidRequest naming
    the choices."""
    value = str(raw).strip().lower()
    if value not in CPU_WEIGHT_MODES:
        raise InvalidRequest(
            f"cpu_weights must be one of {', '.join(CPU_WEIGHT_MODES)}, not {raw!r}", param="cpu_weights"
        )
    return cast(CpuWeightsMode, value)


def conversion_target(file_type: int | None, mode: CpuWeightsMode, *, gpu_layers: int = 0) -> int | None:
    """The file type to load instead of ``file_type`` on the CPU, or None to load it as it is."""
    if mode == "native" or gpu_layers > 0 or file_type is None:
        return None
    return CONVERT_FILE_TYPES.get(file_type)


def converted_tensor_bytes(elements_by_type: Mapping[int, int], bytes_by_type: Mapping[int, int]) -> int:
    """Bytes of all tensors after a conversion: Q4_1/Q5_1 tensors as Q8_0, the rest unchanged."""
    total = 0
    for ggml_type, nbytes in bytes_by_type.items():
        if ggml_type in CONVERTED_TENSOR_TYPES:
            total += elements_by_type.get(ggml_type, 0) // Q8_0_BLOCK * Q8_0_BLOCK_BYTES
        else:
            total += nbytes
    return total
