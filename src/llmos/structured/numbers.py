"""GBNF for JSON numbers, including integer ranges written digit by digit.

A range such as ``[15, 342]`` becomes an alternation of digit patterns
(``1[5-9] | [2-9][0-9] | [12][0-9][0-9] | 3[0-3][0-9] | 34[0-2]``) so the grammar itself
keeps an integer inside its ``minimum``/``maximum``: nothing is left to post-validation.
"""

from __future__ import annotations

MAX_DIGITS = 16
"""Longest integer part the grammar allows; keeps a small model from emitting digits forever."""

FRACTION = f'"." [0-9]{{1,{MAX_DIGITS}}}'
EXPONENT = "[eE] [-+]? [0-9]{1,3}"
UNBOUNDED_INTEGER = f'"-"? ("0" | [1-9] [0-9]{{0,{MAX_DIGITS - 1}}})'
UNBOUNDED_NUMBER = f"{UNBOUNDED_INTEGER} ({FRACTION})? ({EXPONENT})?"


def _same_length(lo: str, hi: str) -> list[str]:
    """Patterns matching every digit string of this length between ``lo`` and ``hi``."""
    if len(lo) == 1:
        return [f"[{lo}-{hi}]" if lo != hi else f'"{lo}"']
    rest = len(lo) - 1
    if lo[0] == hi[0]:
        return [f'"{lo[0]}" ({" | ".join(_same_length(lo[1:], hi[1:]))})']
    if lo[1:] == "0" * rest and hi[1:] == "9" * rest:
        return [f"[{lo[0]}-{hi[0]}] [0-9]{{{rest}}}"]
    out = [f'"{lo[0]}" ({" | ".join(_same_length(lo[1:], "9" * rest))})']
    first, last = int(lo[0]) + 1, int(hi[0]) - 1
    if first <= last:
        out.append(f"[{first}-{last}] [0-9]{{{rest}}}")
    out.append(f'"{hi[0]}" ({" | ".join(_same_length("0" * rest, hi[1:]))})')
    return out


def _unsigned(lo: int, hi: int | None) -> list[str]:
    """Alternatives for the non-negative integers in ``[lo, hi]`` (``hi`` None: no upper bound)."""
    alts: list[str] = []
    if lo == 0:
        alts.append('"0"')
        lo = 1
    if hi is not None and lo > hi:
        return alts
    top = hi if hi is not None else 10**MAX_DIGITS - 1
    width = len(str(lo))
    while lo <= top:
        end = min(top, 10**width - 1)
        alts += _same_length(str(lo), str(end))
        lo = end + 1
        width += 1
    return alts


def integer_range(lo: int | None, hi: int | None) -> str:
    """GBNF expression for the integers in ``[lo, hi]``; either bound may be None (open)."""
    alts: list[str] = []
    neg_hi = -1 if hi is None else min(hi, -1)
    if lo is None or lo <= neg_hi:
        abs_lo = -neg_hi
        abs_hi = None if lo is None else -lo
        neg = _unsigned(abs_lo, abs_hi)
        if neg:
            alts.append(f'"-" ({" | ".join(neg)})')
    pos_lo = 0 if lo is None else max(lo, 0)
    if hi is None or pos_lo <= hi:
        alts += _unsigned(pos_lo, hi)
    return " | ".join(alts)


def nonnegative_number_range(lo: int, hi: int | None) -> str:
    """GBNF for decimal numbers in ``[lo, hi]`` with integer bounds ``0 <= lo``."""
    if hi is None:
        return f"({integer_range(lo, None)}) ({FRACTION})?"
    alts = [f'({integer_range(lo, hi)}) ("." "0"{{1,{MAX_DIGITS}}})?']
    if hi > lo:
        alts.insert(0, f"({integer_range(lo, hi - 1)}) ({FRACTION})?")
    return " | ".join(alts)
