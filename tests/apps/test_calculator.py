from __future__ import annotations

import math

import pytest

from llmos.apps.calculator import CalculatorError, evaluate, format_number


@pytest.mark.parametrize(
    ("expression", "value"),
    [
        ("1 + 2 * 3", 7),
        ("(1 + 2) * 3", 9),
        ("2 ** 3 ** 2", 512),
        ("2 ^ 10", 1024),
        ("-2 ** 2", -4),
        ("--3", 3),
        ("7 // 2", 3),
        ("-7 // 2", -4),
        ("7 % 3", 1),
        ("10 / 4", 2.5),
        ("1.5e3 + .5", 1500.5),
        ("sqrt(16) + abs(-2)", 6),
        ("max(1, 5, 3) - min(4, 2)", 3),
        ("round(3.14159, 2)", 3.14),
        ("floor(2.7) + ceil(2.1)", 5),
        ("log(e) + log10(1000) + log(8, 2)", 7),
        ("2 * pi", math.tau),
        ("  12.5 * 4 / 3  ", 50 / 3),
    ],
)
def test_evaluates(expression: str, value: float) -> None:
    assert evaluate(expression) == pytest.approx(value)


@pytest.mark.parametrize(
    "expression",
    [
        "",
        "1 +",
        "(1 + 2",
        "1 + 2)",
        "1 / 0",
        "5 % 0",
        "0 ** -1",
        "__import__('os')",
        "open('x')",
        "1; 2",
        "2 ** 10000",
        "10 ** 300 * 10 ** 300",
        "sqrt(-1)",
        "log(0)",
        "(-8) ** 0.5",
        "max()",
        "sqrt(1, 2)",
        "foo(1)",
        "x",
        "(" * 100 + "1" + ")" * 100,
        "1" * 600,
    ],
)
def test_refuses(expression: str) -> None:
    with pytest.raises(CalculatorError):
        evaluate(expression)


def test_format_number() -> None:
    assert (
        format_number(4.0) == "4" and format_number(2.5) == "2.5" and format_number(1 / 3) == "0.333333333333"
    )
