"""Facts about a GGUF model read from its header with ``gguf.GGUFReader`` (never loading it)."""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from llmos.engine.chat_formats import ChatFormatGuess, guess_chat_format
from llmos.errors import InvalidModelFile

log = logging.getLogger(__name__)

GGUF_MAGIC = b"GGUF"


@dataclass(frozen=True)
class GGUFMeta:
    architecture: str
    parameter_count: int
    quantization: str
    context_length: int = 0
    embedding_length: int = 0
    block_count: int = 0
    head_count: int = 0
    head_count_kv: int = 0
    vocab_size: int = 0
    chat_template: str | None = None
    tensor_count: int = 0
    tensor_bytes: int = 0
    name: str = ""
    license: str = ""
    chat_format_guess: ChatFormatGuess | None = None
    """When the file has no chat template: the format its vocabulary suggests."""
    extra: dict[str, Any] = field(default_factory=dict)

    def to_metadata(self) -> dict[str, Any]:
        """The facts a manifest keeps in ``metadata`` beyond its own fields."""
        return {
            "block_count": self.block_count,
            "head_count": self.head_count,
            "head_count_kv": self.head_count_kv,
            "vocab_size": self.vocab_size,
            "tensor_count": self.tensor_count,
            "tensor_bytes": self.tensor_bytes,
            "model_name": self.name,
            **self.extra,
        }


def is_gguf(path: Path) -> bool:
    try:
        with path.open("rb") as f:
            return f.read(4) == GGUF_MAGIC
    except OSError:
        return False


def _scalar(fields: dict[str, Any], key: str) -> Any:
    f = fields.get(key)
    if f is None:
        return None
    try:
        return f.contents()
    except Exception:
        return None


def _int(fields: dict[str, Any], key: str) -> int:
    v = _scalar(fields, key)
    if isinstance(v, list):  # per-layer counts: report the largest
        v = max((x for x in v if isinstance(x, int | float)), default=0)
    return int(v) if isinstance(v, int | float) else 0


def _vocabulary_guess(fields: dict[str, Any]) -> ChatFormatGuess:
    tokens = fields.get("tokenizer.ggml.tokens")
    known: set[bytes] = set()
    if tokens is not None:
        known = {bytes(tokens.parts[i]) for i in tokens.data}
    return guess_chat_format(lambda text: text.encode() in known)


def _file_type_name(value: int) -> str:
    from gguf import LlamaFileType

    try:
        return LlamaFileType(value).name.removeprefix("MOSTLY_").removeprefix("ALL_")
    except ValueError:
        return f"file_type_{value}"


def read_gguf_meta(path: Path) -> GGUFMeta:
    """Read ``path``'s header. Raises InvalidModelFile when it is missing, not a GGUF file or
    truncated, with a message that says which."""
    from gguf import GGUFReader

    try:
        size = path.stat().st_size
    except OSError as exc:
        raise InvalidModelFile(f"cannot read {path}: {exc.strerror}", param="path") from exc
    if not is_gguf(path):
        raise InvalidModelFile(
            f"{path} is not a GGUF model file (it does not start with 'GGUF'); llmos imports GGUF files — "
            "convert the model with llama.cpp's convert_hf_to_gguf.py first",
            param="path",
        )
    try:
        reader = GGUFReader(path)
    except Exception as exc:
        log.debug("GGUFReader failed on %s", path, exc_info=True)
        raise InvalidModelFile(
            f"{path} is not a complete GGUF file (truncated or damaged: {type(exc).__name__}); "
            "download or copy it again",
            param="path",
        ) from exc
    end = 0
    tensor_bytes = 0
    params = 0
    types: Counter[str] = Counter()
    for t in reader.tensors:
        n_bytes = int(t.n_bytes)
        tensor_bytes += n_bytes
        params += int(t.n_elements)
        end = max(end, int(t.data_offset) + n_bytes)
        types[t.tensor_type.name] += int(t.n_elements)
    if end > size:
        raise InvalidModelFile(
            f"{path} is a truncated GGUF file: its tensors need {end} bytes but the file has {size}; "
            "download it again",
            param="path",
        )
    fields = dict(reader.fields)
    arch = _scalar(fields, "general.architecture")
    if not isinstance(arch, str) or not arch:
        raise InvalidModelFile(f"{path} has no general.architecture in its GGUF header", param="path")
    file_type = _scalar(fields, "general.file_type")
    if isinstance(file_type, int):
        quant = _file_type_name(file_type)
    else:
        quant = types.most_common(1)[0][0] if types else ""
    template = _scalar(fields, "tokenizer.chat_template")
    vocab = _int(fields, f"{arch}.vocab_size")
    if not vocab and "tokenizer.ggml.tokens" in fields:
        vocab = len(fields["tokenizer.ggml.tokens"].data)
    name = _scalar(fields, "general.name")
    lic = _scalar(fields, "general.license")
    return GGUFMeta(
        architecture=arch,
        parameter_count=params,
        quantization=quant,
        context_length=_int(fields, f"{arch}.context_length"),
        embedding_length=_int(fields, f"{arch}.embedding_length"),
        block_count=_int(fields, f"{arch}.block_count"),
        head_count=_int(fields, f"{arch}.attention.head_count"),
        head_count_kv=_int(fields, f"{arch}.attention.head_count_kv"),
        vocab_size=vocab,
        chat_template=template if isinstance(template, str) else None,
        tensor_count=len(reader.tensors),
        tensor_bytes=tensor_bytes,
        name=name if isinstance(name, str) else "",
        license=lic if isinstance(lic, str) else "",
        chat_format_guess=None if isinstance(template, str) else _vocabulary_guess(fields),
        extra={"gguf_version": _int(fields, "GGUF.version")},
    )
