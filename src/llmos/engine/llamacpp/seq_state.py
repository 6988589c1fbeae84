"""One sequence's KV as bytes (llama.cpp's per-sequence state): what preempt keeps and restore
writes back."""

from __future__ import annotations

import ctypes
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
