"""One sequence's KV as bytes (llama.cpp's per-sequence state): what preempt keeps and restore
writes back, and what the solo lane (``solo.py``) moves between two contexts.

A per-sequence state of a plain KV cache is ``u32 magic, i32 seq_id`` (llama.cpp's
``state_seq_get_data``), ``u32 n_stream`` (``llama_kv_cache::state_write`` from here on), then
for each stream ``u32 cell_count`` and, when it is not 0, the cells' meta
(per cell ``i32 pos, u32 n_seq_id, i32 seq_id``) and data (``u32 v_trans, u32 n_layer``; per
layer ``i32 k_type, u64 k_row`` and ``cell_count`` rows; per layer V: rows the same way, or,
transposed, ``i32 v_type, u32 v_el, u32 n_embd_v`` and ``n_embd_v * cell_count`` elements).
llama.cpp restores a state only into a context with as many streams as the one that wrote it;
:func:`restream` rewrites that header so the state of one sequence moves between a context of
per-sequence streams and a context of one stream. Anything else (a sliding-window cache's second
section, cells with extra position data, a recurrent state) does not parse, and is not moved.
"""

from __future__ import annotations

import ctypes
import struct
from typing import Any

import llama_cpp


def read_seq_state(ctx: Any, seq_id: int) -> bytes:
    """The KV state of llama.cpp sequence ``seq_id`` in ``ctx``."""
    size = int(llama_cpp.llama_state_seq_get_size(ctx, seq_id))
    buf = (ctypes.c_uint8 * size)()
    n = int(llama_cpp.llama_state_seq_get_data(ctx, buf, size, seq_id))
    return ctypes.string_at(buf, n)


def write_seq_state(ctx: Any, seq_id: int, state: bytes) -> bool:
    """Write ``state`` (from :func:`read_seq_state`) into sequence ``seq_id``; whether llama.cpp
    took it."""
    data = (ctypes.c_uint8 * len(state)).from_buffer_copy(state)
    return int(llama_cpp.llama_state_seq_set_data(ctx, data, len(state), seq_id)) > 0


_U32 = struct.Struct("<I")
_HEAD = struct.Struct("<Ii")  # magic, seq_id
_U64 = struct.Struct("<Q")


def _section_end(state: bytes, at: int, cells: int) -> int:
    """Where the meta and data of one stream's ``cells`` cells starting at ``at`` end. Raises
    ValueError when they are not a plain KV cache's."""
    for _ in range(cells):  # pos, n_seq_id (1 for one sequence's state), seq_id
        (n_seq,) = _U32.unpack_from(state, at + 4)
        if n_seq != 1:
            raise ValueError("a cell of a per-sequence state names more than one sequence")
        at += 12
    v_trans, n_layer = struct.unpack_from("<II", state, at)
    at += 8
    for _ in range(n_layer):  # K: type, row bytes, rows
        (row,) = _U64.unpack_from(state, at + 4)
        at += 12 + row * cells
    for _ in range(n_layer):
        if v_trans:  # type, element bytes, rows of elements
            el, n_embd = struct.unpack_from("<II", state, at + 4)
            at += 12 + el * n_embd * cells
        else:
            (row,) = _U64.unpack_from(state, at + 4)
            at += 12 + row * cells
    if at > len(state):
        raise ValueError("the state ends inside its data")
    return at


def restream(state: bytes, n_stream: int, stream: int) -> bytes | None:
    """``state`` (one sequence's, holding cells in one stream at most) rewritten for a context of
    ``n_stream`` streams, its cells in ``stream``. None when ``state`` is not a plain KV cache's
    state as the module docstring describes (then it cannot be moved)."""
    if not 0 <= stream < n_stream:
        raise ValueError(f"stream {stream} is not one of {n_stream}")
    try:
        magic, _ = _HEAD.unpack_from(state, 0)
        (have,) = _U32.unpack_from(state, _HEAD.size)
        at, body = _HEAD.size + 4, b""
        for _ in range(have):
            (cells,) = _U32.unpack_from(state, at)
            if cells == 0:
                at += 4
                continue
            if body:
                return None  # cells in two streams: not one sequence's state
            end = _section_end(state, at + 4, cells)
            body, at = state[at:end], end
    except (struct.error, ValueError):
        return None
    if at != len(state):
        return None
    head, empty = _HEAD.pack(magic, stream) + _U32.pack(n_stream), _U32.pack(0)
    if not body:
        return head + empty * n_stream
    return head + empty * stream + body + empty * (n_stream - stream - 1)
