"""Facts about a sentence-transformers model read from its config files and safetensors header."""

from __future__ import annotations

import json
import struct
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from math import prod
from pathlib import Path
from typing import Any

from llmos.errors import InvalidModelFile


@dataclass(frozen=True)
class SentenceTransformerMeta:
    architecture: str
    parameter_count: int
    embedding_length: int
    context_length: int
    dtype: str


def _json(files: Mapping[str, Path], name: str) -> dict[str, Any]:
    p = files.get(name)
    if p is None:
        return {}
    try:
        value = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise InvalidModelFile(f"{name} of the model is not valid JSON: {exc}") from exc
    return value if isinstance(value, dict) else {}


def _safetensors(path: Path) -> tuple[int, str]:
    try:
        with path.open("rb") as f:
            (n,) = struct.unpack("<Q", f.read(8))
            if n > 100_000_000:
                raise ValueError("header too large")
            header = json.loads(f.read(n))
    except (OSError, ValueError, struct.error) as exc:
        raise InvalidModelFile(f"{path.name} is not a readable safetensors file: {exc}") from exc
    count, by_dtype = 0, Counter[str]()
    for key, info in header.items():
        if key == "__metadata__" or not isinstance(info, dict):
            continue
        n = prod(int(d) for d in info.get("shape", []))
        count += n
        by_dtype[str(info.get("dtype", ""))] += n
    return count, by_dtype.most_common(1)[0][0] if by_dtype else ""


def read_st_meta(files: Mapping[str, Path]) -> SentenceTransformerMeta:
    """``files`` maps manifest paths (``config.json``, ``model.safetensors``...) to readable files."""
    if "modules.json" not in files or "config.json" not in files:
        raise InvalidModelFile("a sentence-transformers model needs modules.json and config.json")
    config = _json(files, "config.json")
    st = _json(files, "sentence_bert_config.json")
    pooling = _json(files, "1_Pooling/config.json")
    params, dtype = _safetensors(files["model.safetensors"]) if "model.safetensors" in files else (0, "")
    return SentenceTransformerMeta(
        architecture=str(config.get("model_type", "")),
        parameter_count=params,
        embedding_length=int(pooling.get("word_embedding_dimension") or config.get("hidden_size") or 0),
        context_length=int(st.get("max_seq_length") or config.get("max_position_embeddings") or 0),
        dtype=dtype,
    )
