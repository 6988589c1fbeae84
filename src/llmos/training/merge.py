"""A full GGUF from a base GGUF and a LoRA adapter GGUF: ``W' = W + scale * alpha/rank * B @ A``.

Every metadata field and every tensor the adapter does not touch is copied as stored (quantized
bytes included); an adapted tensor is dequantized and merged in float32, then stored as F32 (an
F32 base tensor), F16 (a float base tensor, or rows that do not split into Q8_0 blocks) or Q8_0
(a quantized one). Written to a temp file beside ``dest`` and renamed into
place, so a crash leaves no half-written model under the final name.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

import numpy as np

from llmos.errors import InvalidRequest
from llmos.training.adapter_gguf import Adapter, read_adapter

Q8_0_BLOCK = 32
FLOAT_TYPES = frozenset({1, 30})
"""F16 and BF16 (``GGMLQuantizationType``): merged tensors of these bases are stored as F16."""


def merge_adapter(base: Path, adapter_path: Path, dest: Path, *, scale: float = 1.0) -> Path:
    """Write the merged model to ``dest`` (atomically) and return it. Raises InvalidRequest when
    the adapter does not fit the base (architecture, tensor names or shapes)."""
    import gguf

    adapter = read_adapter(adapter_path)
    reader = gguf.GGUFReader(str(base))
    arch_field = reader.fields.get("general.architecture")
    architecture = str(arch_field.contents()) if arch_field is not None else ""
    if architecture != adapter.architecture:
        raise InvalidRequest(
            f"the adapter is for {adapter.architecture!r} models, the base is {architecture!r}", param="model"
        )
    names = {t.name for t in reader.tensors}
    missing = sorted(set(adapter.pairs) - names)
    if missing:
        raise InvalidRequest(f"the base model has no tensor {missing[0]!r} the adapter adapts", param="model")
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".tmp-{os.getpid()}-", suffix=".gguf", dir=dest.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        writer = gguf.GGUFWriter(str(tmp), architecture)
        for field in reader.fields.values():
            if field.name.startswith("GGUF.") or field.name == "general.architecture":
                continue
            vtype = field.types[0]
            sub = field.types[-1] if vtype == gguf.GGUFValueType.ARRAY else None
            writer.add_key_value(field.name, field.contents(), vtype, sub_type=sub)
        for t in reader.tensors:
            if t.name in adapter.pairs:
                merged = _merged(t, adapter, scale)
                if t.tensor_type == gguf.GGMLQuantizationType.F32:
                    writer.add_tensor(t.name, merged)
                elif t.tensor_type in FLOAT_TYPES or merged.shape[-1] % Q8_0_BLOCK:
                    writer.add_tensor(t.name, merged.astype(np.float16))
                else:
                    q = gguf.quants.quantize(merged, gguf.GGMLQuantizationType.Q8_0)
                    writer.add_tensor(t.name, q, raw_dtype=gguf.GGMLQuantizationType.Q8_0)
            else:
                writer.add_tensor(t.name, t.data, raw_dtype=t.tensor_type)
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
        writer.close()
        os.replace(tmp, dest)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
    return dest


def _merged(tensor: object, adapter: Adapter, scale: float) -> np.ndarray:
    import gguf

    t: gguf.ReaderTensor = tensor  # type: ignore[assignment]
    w = gguf.quants.dequantize(t.data, t.tensor_type).astype(np.float32)
    shape = tuple(int(x) for x in reversed(t.shape))
    w = w.reshape(shape)
    a, b = adapter.pairs[t.name]
    if b.shape[0] != w.shape[0] or a.shape[1] != w.shape[1]:
        raise InvalidRequest(
            f"adapter tensor {t.name} is {b.shape[0]}x{a.shape[1]}, the base's is {w.shape[0]}x{w.shape[1]}",
            param="model",
        )
    return np.ascontiguousarray(w + (scale * adapter.scale(t.name)) * (b @ a), dtype=np.float32)
