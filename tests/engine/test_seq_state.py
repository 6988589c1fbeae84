"""``restream``: one sequence's llama.cpp KV state rewritten between a context of per-sequence
streams and a context of one stream; anything that is not a plain KV cache's state is refused."""

from __future__ import annotations

import struct

import pytest

from llmos.engine.llamacpp.seq_state import restream

MAGIC = 0xAF143CD8
N_LAYER, K_ROW, V_ROW = 3, 8, 6


def _cells(n: int, seq: int, *, v_trans: bool = False, n_seq: int = 1) -> bytes:
    """One stream's section: ``n`` cells of sequence ``seq`` and their K and V rows."""
    meta = b"".join(struct.pack("<iI", pos, n_seq) + struct.pack("<i", seq) * n_seq for pos in range(n))
    data = struct.pack("<II", int(v_trans), N_LAYER)
    for layer in range(N_LAYER):
        data += struct.pack("<iQ", 1, K_ROW) + bytes([layer]) * (K_ROW * n)
    for layer in range(N_LAYER):
        if v_trans:
            data += struct.pack("<iII", 1, 2, V_ROW // 2) + bytes([100 + layer]) * (V_ROW * n)
        else:
            data += struct.pack("<iQ", 1, V_ROW) + bytes([100 + layer]) * (V_ROW * n)
    return struct.pack("<I", n) + meta + data


def _state(n_stream: int, sections: dict[int, bytes], seq: int = 0) -> bytes:
    body = b"".join(sections.get(s, struct.pack("<I", 0)) for s in range(n_stream))
    return struct.pack("<IiI", MAGIC, seq, n_stream) + body


@pytest.mark.parametrize("v_trans", [False, True])
def test_a_state_moves_between_sixteen_streams_and_one_and_back(v_trans: bool) -> None:
    section = _cells(5, 7, v_trans=v_trans)
    many = _state(16, {7: section}, seq=7)
    one = restream(many, 1, 0)
    assert one == _state(1, {0: section}, seq=0)
    assert restream(one or b"", 16, 7) == many
    assert restream(one or b"", 16, 3) == _state(16, {3: section}, seq=3)


def test_an_empty_state_restreams_to_empty_streams() -> None:
    assert restream(_state(16, {}), 1, 0) == _state(1, {})


@pytest.mark.parametrize(
    "state",
    [
        _state(4, {1: _cells(3, 1), 2: _cells(3, 2)}),  # cells in two streams
        _state(4, {1: _cells(3, 1, n_seq=2)}),  # a cell shared by two sequences
        _state(4, {1: _cells(3, 1)}) + struct.pack("<I", 4),  # a second section (sliding window)
        _state(1, {0: _cells(3, 0)})[:-5],  # cut short inside its V rows
        b"\x01\x02",
    ],
    ids=["two-streams", "shared-cell", "trailing", "truncated", "garbage"],
)
def test_a_state_that_is_not_one_plain_sequence_is_refused(state: bytes) -> None:
    assert restream(state, 1, 0) is None


def test_the_target_stream_must_exist() -> None:
    with pytest.raises(ValueError, match="stream 2"):
        restream(_state(1, {}), 2, 2)
