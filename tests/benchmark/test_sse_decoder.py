from __future__ import annotations

import pytest

from llmos.benchmark.sse_decoder import ServerSentEvent, SSEDecoder

STREAM = (
    b"\xef\xbb\xbf: a comment\r\n"
    b"data: one\r\n\r\n"
    b"event: update\rdata: two\rdata:  three\r\r"
    b'id: 7\ndata:{"k": "\xc3\xa9"}\n\n'
    b"data\n\n"
    b"retry: 10\n\n"
    b"data: [DONE]\n\n"
)
EXPECTED = [
    ServerSentEvent("one"),
    ServerSentEvent("two\n three", event="update"),
    ServerSentEvent('{"k": "é"}', id="7"),
    ServerSentEvent("", id="7"),  # the last event id persists
    ServerSentEvent("[DONE]", id="7"),
]


def decode_in_pieces(data: bytes, size: int) -> list[ServerSentEvent]:
    decoder = SSEDecoder()
    out: list[ServerSentEvent] = []
    for i in range(0, len(data), size):
        out.extend(decoder.feed(data[i : i + size]))
    return out


@pytest.mark.parametrize("size", [1, 2, 3, 7, len(STREAM)])
def test_events_do_not_depend_on_how_the_bytes_are_split(size: int) -> None:
    """CRLF, CR and LF line ends, comments, multi-line data, ids, a BOM and a character split
    across chunks all decode the same, whatever the chunk boundaries."""
    assert decode_in_pieces(STREAM, size) == EXPECTED


def test_a_cr_at_a_chunk_end_followed_by_lf_is_one_line_end() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"data: a\r") == []
    assert decoder.feed(b"\n\r") == [ServerSentEvent("a")]
    assert decoder.feed(b"\ndata: b\n\n") == [ServerSentEvent("b")]


def test_an_unterminated_event_is_never_dispatched() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"data: complete\n\ndata: cut sh") == [ServerSentEvent("complete")]
    assert decoder.feed(b"ort\n") == []  # a line, but no blank line ends the event
