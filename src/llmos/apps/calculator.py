"""A safe arithmetic calculator: a small recursive-descent parser, never ``eval``.

Grammar (usual precedence; ``**`` and ``^`` are right-associative powers)::

    expr   := term (("+" | "-") term)*
    term   := unary (("*" | "/" | "//" | "%") unary)*
    unary  := ("+" | "-") unary | power
    power  := atom (("**" | "^") unary)?
    atom   := NUMBER | NAME | NAME "(" expr ("," expr)* ")" | "(" expr ")"

Names: the constants ``pi``, ``e``, ``tau`` and the functions ``sqrt``, ``abs``, ``round``,
``floor``, ``ceil``, ``min``, ``max``, ``log`` (natural, or ``log(x, base)``), ``log10``, ``exp``,
``sin``, ``cos``, ``tan``. Inputs are bounded in length, nesting and size of powers, so no
expression can exhaust the machine.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass

MAX_CHARS = 500
MAX_DEPTH = 60
MAX_EXPONENT = 1000.0
MAX_MAGNITUDE = 1e300


class CalculatorError(ValueError):
    """The expression is malformed or cannot be computed (division by zero, overflow...)."""


_TOKEN = re.compile(
    r"\s*(?:(?P<number>(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?)|(?P<name>[A-Za-z_][A-Za-z0-9_]*)"
    r"|(?P<op>\*\*|//|[-+*/%^(),]))"
)

CONSTANTS: dict[str, float] = {"pi": math.pi, "e": math.e, "tau": math.tau}


def _log(x: float, base: float | None = None) -> float:
    if x <= 0 or (base is not None and (base <= 0 or base == 1)):
        raise CalculatorError("log is defined for positive numbers (and a positive base other than 1)")
    return math.log(x) if base is None else math.log(x, base)


def _sqrt(x: float) -> float:
    if x < 0:
        raise CalculatorError("sqrt of a negative number")
    return math.sqrt(x)


def _round(x: float, digits: float = 0) -> float:
    if digits != int(digits) or not -20 <= digits <= 20:
        raise CalculatorError("round's digits must be an integer between -20 and 20")
    return float(round(x, int(digits)))


FUNCTIONS: dict[str, tuple[Callable[..., float], int, int]] = {
    "sqrt": (_sqrt, 1, 1),
    "abs": (abs, 1, 1),
    "round": (_round, 1, 2),
    "floor": (lambda x: float(math.floor(x)), 1, 1),
    "ceil": (lambda x: float(math.ceil(x)), 1, 1),
    "min": (min, 1, 50),
    "max": (max, 1, 50),
    "log": (_log, 1, 2),
    "log10": (lambda x: _log(x, 10), 1, 1),
    "exp": (math.exp, 1, 1),
    "sin": (math.sin, 1, 1),
    "cos": (math.cos, 1, 1),
    "tan": (math.tan, 1, 1),
}
"""name → (function, fewest arguments, most arguments)."""


@dataclass(frozen=True)
class _Tok:
    kind: str
    text: str
    pos: int


def _tokenize(text: str) -> list[_Tok]:
    tokens: list[_Tok] = []
    pos = 0
    while pos < len(text):
        if text[pos:].strip() == "":
            break
        m = _TOKEN.match(text, pos)
        if m is None or m.end() == pos:
            bad = text[pos:].lstrip()[:1]
            raise CalculatorError(f"unexpected character {bad!r} at position {pos}")
        kind = m.lastgroup or "op"
        tokens.append(_Tok(kind, m.group(kind), m.start(kind)))
        pos = m.end()
    return tokens


class _Parser:
    def __init__(self, tokens: list[_Tok]) -> None:
        self.tokens = tokens
        self.i = 0
        self.depth = 0

    def peek(self) -> _Tok | None:
        return self.tokens[self.i] if self.i < len(self.tokens) else None

    def take(self, text: str) -> bool:
        tok = self.peek()
        if tok is not None and tok.kind == "op" and tok.text == text:
            self.i += 1
            return True
        return False

    def expect(self, text: str) -> None:
        if not self.take(text):
            tok = self.peek()
            where = f"at position {tok.pos}" if tok else "at the end"
            raise CalculatorError(f"expected {text!r} {where}")

    def nested(self) -> None:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise CalculatorError(f"the expression nests deeper than {MAX_DEPTH} levels")

    def expr(self) -> float:
        self.nested()
        value = self.term()
        while True:
            if self.take("+"):
                value = _checked(value + self.term())
            elif self.take("-"):
                value = _checked(value - self.term())
            else:
                break
        self.depth -= 1
        return value

    def term(self) -> float:
        value = self.unary()
        while True:
            if self.take("*"):
                value = _checked(value * self.unary())
            elif self.take("//"):
                value = float(math.floor(value / _nonzero(self.unary())))
            elif self.take("/"):
                value = _checked(value / _nonzero(self.unary()))
            elif self.take("%"):
                value = math.fmod(value, _nonzero(self.unary()))
            else:
                return value

    def unary(self) -> float:
        if self.take("-"):
            self.nested()
            value = -self.unary()
            self.depth -= 1
            return value
        if self.take("+"):
            self.nested()
            value = self.unary()
            self.depth -= 1
            return value
        return self.power()

    def power(self) -> float:
        base = self.atom()
        if self.take("**") or self.take("^"):
            self.nested()
            exponent = self.unary()
            self.depth -= 1
            if abs(exponent) > MAX_EXPONENT:
                raise CalculatorError(f"exponents are limited to ±{MAX_EXPONENT:g}")
            if base == 0 and exponent < 0:
                raise CalculatorError("division by zero")
            if base < 0 and exponent != int(exponent):
                raise CalculatorError("a negative number to a fractional power is not a real number")
            try:
                return _checked(math.pow(base, exponent))
            except OverflowError:
                raise CalculatorError("the result is too large") from None
        return base

    def atom(self) -> float:
        tok = self.peek()
        if tok is None:
            raise CalculatorError("the expression ends too early")
        self.i += 1
        if tok.kind == "number":
            return _checked(float(tok.text))
        if tok.kind == "name":
            return self.name(tok)
        if tok.text == "(":
            value = self.expr()
            self.expect(")")
            return value
        raise CalculatorError(f"unexpected {tok.text!r} at position {tok.pos}")

    def name(self, tok: _Tok) -> float:
        name = tok.text.lower()
        if name in CONSTANTS:
            return CONSTANTS[name]
        if name not in FUNCTIONS:
            raise CalculatorError(f"unknown name {tok.text!r}")
        fn, lo, hi = FUNCTIONS[name]
        self.expect("(")
        args = [self.expr()]
        while self.take(","):
            args.append(self.expr())
        self.expect(")")
        if not lo <= len(args) <= hi:
            raise CalculatorError(
                f"{name} takes {lo} to {hi} arguments" if lo != hi else f"{name} takes {lo}"
            )
        try:
            return _checked(float(fn(*args)))
        except (OverflowError, ValueError) as exc:
            if isinstance(exc, CalculatorError):
                raise
            raise CalculatorError(f"{name}: {exc}") from None


def _nonzero(value: float) -> float:
    if value == 0:
        raise CalculatorError("division by zero")
    return value


def _checked(value: float) -> float:
    if math.isnan(value) or math.isinf(value) or abs(value) > MAX_MAGNITUDE:
        raise CalculatorError("the result is too large or not a number")
    return value


def evaluate(expression: str) -> float:
    """The value of an arithmetic expression. Raises CalculatorError."""
    if len(expression) > MAX_CHARS:
        raise CalculatorError(f"expressions are limited to {MAX_CHARS} characters")
    tokens = _tokenize(expression)
    if not tokens:
        raise CalculatorError("the expression is empty")
    parser = _Parser(tokens)
    value = parser.expr()
    leftover = parser.peek()
    if leftover is not None:
        raise CalculatorError(f"unexpected {leftover.text!r} at position {leftover.pos}")
    return value


def format_number(value: float) -> str:
    """``4`` rather than ``4.0``; at most 12 significant digits otherwise."""
    if value == int(value) and abs(value) < 1e15:
        return str(int(value))
    return f"{value:.12g}"
