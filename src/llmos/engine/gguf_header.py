"""llmos's one reader of GGUF files: the header's metadata and the size of its tensors
(:func:`read_gguf_header`), and the facts a manifest keeps (:func:`read_gguf_meta`).

The registry reads a model's facts at pull and import, the resource manager its shape for the
memory estimates, the engine its file type for the weights encoding: all through this module.
``gguf.GGUFReader`` decodes every array (a 262k-token vocabulary takes seconds); these callers
need only scalars, array lengths and tensor sizes, so this reader skips array bodies (but for
the few string arrays asked for by name) and reads nothing past the tensor infos. It never loads
the model. Little-endian GGUF v2/v3 only.
"""

from __future__ import annotations

import math
import mmap
import struct
from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gguf import GGML_QUANT_SIZES, GGMLQuantizationType, LlamaFileType

from llmos.engine.chat_formats import ChatFormatGuess, guess_chat_format
from llmos.errors import InvalidModelFile

_MAGIC = b"GGUF"
_SCALARS: dict[int, str] = {
    0: "<B",
    1: "<b",
    2: "<H",
    3: "<h",
    4: "<I",
    5: "<i",
    6: "<f",
    7: "<?",
    10: "<Q",
    11: "<q",
    12: "<d",
}
_STRING, _ARRAY = 8, 9
_SMALL_ARRAY = 4096
"""Numeric arrays up to this length are decoded (per-layer head counts); longer ones keep only their length."""


@dataclass(frozen=True)
class ArrayInfo:
    """An array value whose body was skipped (or kept: when short and numeric, or a string
    array asked for by name)."""

    length: int
    values: tuple[Any, ...] | None = None


@dataclass(frozen=True)
class GGUFHeader:
    version: int = 3
    fields: dict[str, Any] = field(default_factory=dict)
    """Scalars and strings as Python values; arrays as :class:`ArrayInfo`."""
    tensor_count: int = 0
    tensor_bytes: int = 0
    """Sum of every tensor's data size (what is mapped into memory)."""
    data_offset: int = 0
    file_size: int = 0
    elements_by_type: dict[int, int] = field(default_factory=dict)
    """Tensor elements per ggml type."""
    bytes_by_type: dict[int, int] = field(default_factory=dict)
    """Tensor data bytes per ggml type (types this gguf package knows)."""

    @property
    def parameter_count(self) -> int:
        return sum(self.elements_by_type.values())


class _Cursor:
    def __init__(self, buf: mmap.mmap, size: int, path: Path) -> None:
        self.buf = buf
        self.pos = 0
        self.size = size
        self.path = path

    def need(self, n: int) -> None:
        if self.pos + n > self.size:
            raise InvalidModelFile(
                f"{self.path} is a truncated GGUF file (its header ends early); download or copy it again",
                param="path",
            )

    def unpack(self, fmt: str) -> Any:
        n = struct.calcsize(fmt)
        self.need(n)
        (value,) = struct.unpack_from(fmt, self.buf, self.pos)
        self.pos += n
        return value

    def string(self) -> str:
        n = int(self.unpack("<Q"))
        self.need(n)
        raw = bytes(self.buf[self.pos : self.pos + n])
        self.pos += n
        return raw.decode("utf-8", errors="replace")

    def skip_string(self) -> None:
        n = int(self.unpack("<Q"))
        self.need(n)
        self.pos += n

    def value(self, vtype: int, keep_strings: bool = False) -> Any:
        if vtype in _SCALARS:
            return self.unpack(_SCALARS[vtype])
        if vtype == _STRING:
            return self.string()
        if vtype == _ARRAY:
            etype = int(self.unpack("<I"))
            length = int(self.unpack("<Q"))
            if etype == _STRING and keep_strings:
                return ArrayInfo(length, tuple(self.string() for _ in range(length)))
            if etype in _SCALARS:
                width = struct.calcsize(_SCALARS[etype])
                self.need(width * length)
                if length <= _SMALL_ARRAY:
                    values = struct.unpack_from(f"<{length}{_SCALARS[etype][1]}", self.buf, self.pos)
                    self.pos += width * length
                    return ArrayInfo(length, tuple(values))
                self.pos += width * length
                return ArrayInfo(length)
            for _ in range(length):
                if etype == _STRING:
                    self.skip_string()
                else:
                    self.value(etype)
            return ArrayInfo(length)
        raise InvalidModelFile(
            f"{self.path}: its GGUF header has an unknown value type {vtype}", param="path"
        )


def _tensor_nbytes(dims: tuple[int, ...], ggml_type: int) -> int | None:
    try:
        block, type_size = GGML_QUANT_SIZES[GGMLQuantizationType(ggml_type)]
    except (ValueError, KeyError):
        return None
    n = 1
    for d in dims:
        n *= d
    return n // block * type_size


def read_gguf_header(path: Path, *, strings: Collection[str] = ()) -> GGUFHeader:
    """Parse the header of the GGUF at ``path``; the string arrays named in ``strings`` (say
    ``tokenizer.ggml.tokens``) are decoded, every other long array keeps only its length.

    Raises InvalidModelFile when the file is missing, not a GGUF file, or truncated (its header,
    or tensor data that ends past the end of the file), with a message that says which.
    """
    try:
        with path.open("rb") as fh:
            size = path.stat().st_size
            if fh.read(4) != _MAGIC:
                raise InvalidModelFile(
                    f"{path} is not a GGUF model file (it does not start with 'GGUF'); llmos imports GGUF "
                    "files — convert the model with llama.cpp's convert_hf_to_gguf.py first",
                    param="path",
                )
            if size < 24:
                raise InvalidModelFile(
                    f"{path} is a truncated GGUF file; download or copy it again", param="path"
                )
            with mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as buf:
                return _parse(_Cursor(buf, size, path), frozenset(strings))
    except OSError as exc:
        raise InvalidModelFile(f"cannot read {path}: {exc.strerror or exc}", param="path") from exc


def _parse(cur: _Cursor, strings: frozenset[str]) -> GGUFHeader:
    path = cur.path
    cur.pos = 4
    version = int(cur.unpack("<I"))
    if version not in (2, 3):
        raise InvalidModelFile(
            f"{path}: unsupported GGUF version {version} (big-endian or too old)", param="path"
        )
    tensor_count = int(cur.unpack("<Q"))
    kv_count = int(cur.unpack("<Q"))
    fields: dict[str, Any] = {}
    for _ in range(kv_count):
        key = cur.string()
        fields[key] = cur.value(int(cur.unpack("<I")), keep_strings=key in strings)
    total = 0
    exact = True
    data_end = 0
    elements: dict[int, int] = {}
    by_type: dict[int, int] = {}
    for _ in range(tensor_count):
        cur.skip_string()
        n_dims = int(cur.unpack("<I"))
        dims = tuple(int(cur.unpack("<Q")) for _ in range(n_dims))
        ggml_type = int(cur.unpack("<I"))
        nbytes = _tensor_nbytes(dims, ggml_type)
        offset = int(cur.unpack("<Q"))  # within the data section
        elements[ggml_type] = elements.get(ggml_type, 0) + math.prod(dims)
        if nbytes is None:
            exact = False
        else:
            total += nbytes
            by_type[ggml_type] = by_type.get(ggml_type, 0) + nbytes
            data_end = max(data_end, offset + nbytes)
    alignment = fields.get("general.alignment", 32)
    if not isinstance(alignment, int) or alignment <= 0:
        alignment = 32
    data_offset = (cur.pos + alignment - 1) // alignment * alignment
    if data_offset + data_end > cur.size:
        raise InvalidModelFile(
            f"{path} is a truncated GGUF file: its tensors need {data_offset + data_end} bytes but the "
            f"file has {cur.size}; download it again",
            param="path",
        )
    if not exact:
        # A tensor type this gguf package does not know: the data section is the next best bound.
        total = max(0, cur.size - data_offset)
    return GGUFHeader(
        version=version,
        fields=fields,
        tensor_count=tensor_count,
        tensor_bytes=total,
        data_offset=data_offset,
        file_size=cur.size,
        elements_by_type=elements,
        bytes_by_type=by_type,
    )


@dataclass(frozen=True)
class GGUFMeta:
    """The facts about a GGUF model that its manifest keeps."""

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


_TOKENS = "tokenizer.ggml.tokens"


def read_gguf_meta(path: Path) -> GGUFMeta:
    """The facts of the GGUF at ``path``, read from its header. Raises InvalidModelFile as
    :func:`read_gguf_header` does, and when the header names no architecture."""
    header = read_gguf_header(path)
    fields = header.fields
    arch = fields.get("general.architecture")
    if not isinstance(arch, str) or not arch:
        raise InvalidModelFile(f"{path} has no general.architecture in its GGUF header", param="path")
    template = fields.get("tokenizer.chat_template")
    guess = None
    if not isinstance(template, str):
        # Only a file without a template pays for decoding its vocabulary.
        vocabulary = read_gguf_header(path, strings=(_TOKENS,)).fields.get(_TOKENS)
        known = set(vocabulary.values or ()) if isinstance(vocabulary, ArrayInfo) else set()
        guess = guess_chat_format(known.__contains__)
    vocab = _int(fields, f"{arch}.vocab_size")
    tokens = fields.get(_TOKENS)
    if not vocab and isinstance(tokens, ArrayInfo):
        vocab = tokens.length
    name = fields.get("general.name")
    lic = fields.get("general.license")
    return GGUFMeta(
        architecture=arch,
        parameter_count=header.parameter_count,
        quantization=_quantization(header),
        context_length=_int(fields, f"{arch}.context_length"),
        embedding_length=_int(fields, f"{arch}.embedding_length"),
        block_count=_int(fields, f"{arch}.block_count"),
        head_count=_int(fields, f"{arch}.attention.head_count"),
        head_count_kv=_int(fields, f"{arch}.attention.head_count_kv"),
        vocab_size=vocab,
        chat_template=template if isinstance(template, str) else None,
        tensor_count=header.tensor_count,
        tensor_bytes=header.tensor_bytes,
        name=name if isinstance(name, str) else "",
        license=lic if isinstance(lic, str) else "",
        chat_format_guess=guess,
        extra={"gguf_version": header.version},
    )


def _int(fields: dict[str, Any], key: str) -> int:
    """A count from the header; of per-layer counts, the largest."""
    v = fields.get(key)
    if isinstance(v, ArrayInfo):
        v = max((x for x in v.values or () if isinstance(x, int | float)), default=0)
    return int(v) if isinstance(v, int | float) and not isinstance(v, bool) else 0


def _quantization(header: GGUFHeader) -> str:
    """The file type's name (``Q4_1``); without one, the type that holds the most elements."""
    file_type = header.fields.get("general.file_type")
    if isinstance(file_type, int):
        try:
            return LlamaFileType(file_type).name.removeprefix("MOSTLY_").removeprefix("ALL_")
        except ValueError:
            return f"file_type_{file_type}"
    if not header.elements_by_type:
        return ""
    most = max(header.elements_by_type, key=header.elements_by_type.__getitem__)
    try:
        return GGMLQuantizationType(most).name
    except ValueError:
        return f"type_{most}"
