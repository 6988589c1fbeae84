"""A fast reader of a GGUF file's header: its metadata and the size of its tensors.

``gguf.GGUFReader`` decodes every array (a 262k-token vocabulary takes seconds); the resource
manager's estimates and the engine's choice of weights encoding need only scalars, array lengths
and tensor sizes, so this reader skips array bodies and reads nothing past the tensor infos.
Little-endian GGUF v2/v3 only.
"""

from __future__ import annotations

import math
import mmap
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gguf import GGML_QUANT_SIZES, GGMLQuantizationType

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
    """An array value whose body was skipped (or kept, when short and numeric)."""

    length: int
    values: tuple[Any, ...] | None = None


@dataclass(frozen=True)
class GGUFHeader:
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


class _Cursor:
    def __init__(self, buf: mmap.mmap, size: int) -> None:
        self.buf = buf
        self.pos = 0
        self.size = size

    def need(self, n: int) -> None:
        if self.pos + n > self.size:
            raise InvalidModelFile("GGUF header is truncated")

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

    def value(self, vtype: int) -> Any:
        if vtype in _SCALARS:
            return self.unpack(_SCALARS[vtype])
        if vtype == _STRING:
            return self.string()
        if vtype == _ARRAY:
            etype = int(self.unpack("<I"))
            length = int(self.unpack("<Q"))
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
        raise InvalidModelFile(f"GGUF header has an unknown value type {vtype}")


def _tensor_nbytes(dims: tuple[int, ...], ggml_type: int) -> int | None:
    try:
        block, type_size = GGML_QUANT_SIZES[GGMLQuantizationType(ggml_type)]
    except (ValueError, KeyError):
        return None
    n = 1
    for d in dims:
        n *= d
    return n // block * type_size


def read_gguf_header(path: Path) -> GGUFHeader:
    """Parse the header of the GGUF at ``path``. Raises InvalidModelFile if it is not one."""
    try:
        with path.open("rb") as fh:
            size = path.stat().st_size
            if size < 24:
                raise InvalidModelFile(f"{path.name} is too small to be a GGUF file")
            with mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as buf:
                return _parse(_Cursor(buf, size), path)
    except OSError as exc:
        raise InvalidModelFile(f"cannot read {path}: {exc.strerror or exc}") from exc


def _parse(cur: _Cursor, path: Path) -> GGUFHeader:
    cur.need(4)
    if bytes(cur.buf[0:4]) != _MAGIC:
        raise InvalidModelFile(f"{path.name} is not a GGUF file (bad magic)")
    cur.pos = 4
    version = int(cur.unpack("<I"))
    if version not in (2, 3):
        raise InvalidModelFile(f"{path.name}: unsupported GGUF version {version} (big-endian or too old)")
    tensor_count = int(cur.unpack("<Q"))
    kv_count = int(cur.unpack("<Q"))
    fields: dict[str, Any] = {}
    for _ in range(kv_count):
        key = cur.string()
        fields[key] = cur.value(int(cur.unpack("<I")))
    total = 0
    exact = True
    elements: dict[int, int] = {}
    by_type: dict[int, int] = {}
    for _ in range(tensor_count):
        cur.skip_string()
        n_dims = int(cur.unpack("<I"))
        dims = tuple(int(cur.unpack("<Q")) for _ in range(n_dims))
        ggml_type = int(cur.unpack("<I"))
        nbytes = _tensor_nbytes(dims, ggml_type)
        cur.unpack("<Q")  # offset within the data section
        elements[ggml_type] = elements.get(ggml_type, 0) + math.prod(dims)
        if nbytes is None:
            exact = False
        else:
            total += nbytes
            by_type[ggml_type] = by_type.get(ggml_type, 0) + nbytes
    alignment = fields.get("general.alignment", 32)
    if not isinstance(alignment, int) or alignment <= 0:
        alignment = 32
    data_offset = (cur.pos + alignment - 1) // alignment * alignment
    if not exact:
        # A tensor type this gguf package does not know: the data section is the next best bound.
        total = max(0, cur.size - data_offset)
    return GGUFHeader(
        fields=fields,
        tensor_count=tensor_count,
        tensor_bytes=total,
        data_offset=data_offset,
        file_size=cur.size,
        elements_by_type=elements,
        bytes_by_type=by_type,
    )
