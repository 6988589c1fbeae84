"""Keep-alive parsing (Ollama's meaning) and the division of CPU threads."""

from __future__ import annotations

import math

import pytest

from llmos.errors import InvalidRequest
from llmos.resources import FOREVER, format_keep_alive, parse_keep_alive, threads_for


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("5m", 300.0),
        ("30s", 30.0),
        ("1h", 3600.0),
        ("1h30m", 5400.0),
        ("250ms", 0.25),
        ("1.5m", 90.0),
        (" 10s ", 10.0),
        ("45", 45.0),
        (45, 45.0),
        (2.5, 2.5),
        (0, 0.0),
        ("0", 0.0),
        ("0s", 0.0),
        (-1, FOREVER),
        ("-1", FOREVER),
        ("-1m", FOREVER),
        (-0.5, FOREVER),
    ],
)
def test_parse_keep_alive(value: str | int | float, seconds: float) -> None:
    assert parse_keep_alive(value) == seconds


@pytest.mark.parametrize("value", ["", "5 minutes", "m5", "5x", "1h-3m", "nan", True])
def test_parse_keep_alive_rejects_nonsense(value: str | bool) -> None:
    with pytest.raises(InvalidRequest) as err:
        parse_keep_alive(value)
    assert err.value.param == "keep_alive"


def test_format_keep_alive_round_trips() -> None:
    assert format_keep_alive(FOREVER) == "forever"
    assert format_keep_alive(0) == "0s"
    assert format_keep_alive(5400) == "1h30m"
    assert format_keep_alive(0.25) == "0.25s"
    for text in ("5m", "30s", "1h", "2h5m7s"):
        assert format_keep_alive(parse_keep_alive(text)) == text
    assert math.isinf(parse_keep_alive(format_keep_alive(FOREVER).replace("forever", "-1")))


def test_threads_split_physical_cores_between_busy_models() -> None:
    assert threads_for({"a": 3}, 8) == {"a": 8}
    assert threads_for({"a": 1, "b": 1}, 8) == {"a": 4, "b": 4}
    # The busier model gets the core that does not divide evenly.
    assert threads_for({"a": 1, "b": 5, "c": 2}, 8) == {"b": 3, "c": 3, "a": 2}
    # Never more threads than cores across busy models, unless more busy models than cores.
    for cores in range(1, 17):
        for n in range(1, 6):
            shares = threads_for({f"m{i}": 1 for i in range(n)}, cores)
            assert sum(shares.values()) == max(cores, n)
            assert min(shares.values()) >= 1


def test_idle_models_get_the_share_they_would_have_if_woken() -> None:
    assert threads_for({"busy": 2, "idle": 0}, 8) == {"busy": 8, "idle": 4}
    assert threads_for({"x": 0, "y": 0}, 6) == {"x": 6, "y": 6}
    assert threads_for({"a": 1, "b": 1, "idle": 0}, 2) == {"a": 1, "b": 1, "idle": 1}
    assert threads_for({}, 4) == {}
    assert threads_for({"a": 1}, 0) == {"a": 1}
