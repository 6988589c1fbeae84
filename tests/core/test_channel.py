"""The process pipe's own framing: what one end sends the other receives whole and in order,
blocking or read by an event loop in pieces, and the end of the other side is seen."""

from __future__ import annotations

import multiprocessing
import os
import select
import threading

import pytest

from llmos.core.channel import PipeChannel


def _pair() -> tuple[PipeChannel, PipeChannel]:
    a, b = multiprocessing.get_context("spawn").Pipe(duplex=True)
    return PipeChannel(a), PipeChannel(b)


def _drain(reader: PipeChannel, want: int) -> list[object]:
    """What the non-blocking end has received, read as a loop would: only when readable."""
    got: list[object] = []
    while len(got) < want:
        ready, _, _ = select.select([reader.fileno()], [], [], 10)
        assert ready, "nothing arrived"
        got.extend(reader.read_ready())
    return got


def test_blocking_ends_carry_messages_both_ways() -> None:
    a, b = _pair()
    a.send({"x": 1})
    b.send(("reply", [2, 3]))
    assert b.recv() == {"x": 1}
    assert a.recv() == ("reply", [2, 3])
    a.close()
    b.close()


def test_a_loop_reads_many_messages_in_one_read_and_frames_split_across_reads() -> None:
    a, b = _pair()
    b.nonblocking()
    assert b.read_ready() == []  # nothing yet: no waiting
    for i in range(50):
        a.send(("small", i))
    big = bytes(range(256)) * 4096  # 1 MiB: several reads, and more than the pipe buffer
    sender = threading.Thread(target=a.send, args=(("big", big),))
    sender.start()
    got = _drain(b, 51)
    sender.join()
    assert got[:50] == [("small", i) for i in range(50)]
    assert got[50] == ("big", big)
    a.close()
    b.close()


def test_half_a_frame_waits_for_the_rest() -> None:
    a, b = _pair()
    b.nonblocking()
    a.send("first")
    frame_of_second = _frame_bytes("second")
    os.write(a.fileno(), frame_of_second[:5])  # a header cut in the middle
    assert _drain(b, 1) == ["first"]
    assert b.read_ready() == []
    os.write(a.fileno(), frame_of_second[5:])
    assert _drain(b, 1) == ["second"]
    a.close()
    b.close()


def test_the_other_end_closing_is_eof_on_both_kinds_of_read() -> None:
    a, b = _pair()
    b.nonblocking()
    a.send("last")
    a.close()
    assert _drain(b, 1) == ["last"]
    with pytest.raises(EOFError):
        _drain(b, 1)
    c, d = _pair()
    d.close()
    with pytest.raises(EOFError):
        c.recv()
    with pytest.raises(EOFError):
        c.send("nobody listens")
    c.close()


def test_a_closed_end_refuses_to_send_or_receive() -> None:
    a, b = _pair()
    a.close()
    a.close()  # idempotent
    with pytest.raises(EOFError):
        a.send("x")
    with pytest.raises(EOFError):
        a.recv()
    b.close()


def test_a_non_blocking_sender_waits_for_room_instead_of_failing() -> None:
    a, b = _pair()
    a.nonblocking()  # the server's end sends from its writer thread in this mode
    big = b"y" * (4 << 20)
    sender = threading.Thread(target=a.send, args=(big,))
    sender.start()
    assert b.recv() == big  # the pipe filled many times over; nothing was lost
    sender.join()
    a.close()
    b.close()


def _frame_bytes(msg: object) -> bytes:
    """The bytes one send puts on the pipe (read back from a spare pair)."""
    x, y = _pair()
    x.send(msg)
    y.nonblocking()
    select.select([y.fileno()], [], [], 10)
    data = os.read(y.fileno(), 1 << 16)
    x.close()
    y.close()
    return data
