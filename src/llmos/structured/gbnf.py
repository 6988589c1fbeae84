"""Writing GBNF, the grammar language of llama.cpp's grammar sampler.

:class:`GrammarBuilder` collects named rules, reuses a rule whose body is already defined
(so shared sub-schemas cost one rule), and renders the whole grammar with ``root`` first.
The quoting helpers turn arbitrary text into GBNF literals and character-class members.
"""

from __future__ import annotations

import re

_RULE_NAME_BAD = re.compile(r"[^a-zA-Z0-9-]+")

_LITERAL_ESCAPES = {'"': '\\"', "\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t"}
_CLASS_ESCAPES = {
    "]": "\\]",
    "[": "\\[",
    "\\": "\\\\",
    "^": "\\^",
    "-": "\\-",
    "\n": "\\n",
    "\r": "\\r",
    "\t": "\\t",
}


def _escape_char(ch: str, table: dict[str, str]) -> str:
    if ch in table:
        return table[ch]
    code = ord(ch)
    if code < 0x20 or code == 0x7F:
        return f"\\x{code:02X}"
    return ch


def literal(text: str) -> str:
    """``text`` as a GBNF string literal (``"..."``) matching exactly these characters."""
    return '"' + "".join(_escape_char(ch, _LITERAL_ESCAPES) for ch in text) + '"'


def class_char(ch: str) -> str:
    """One character as it must be written inside a GBNF character class ``[...]``."""
    return _escape_char(ch, _CLASS_ESCAPES)


def repeat(item: str, min_count: int, max_count: int | None) -> str:
    """``item`` repeated between ``min_count`` and ``max_count`` (None: unbounded) times."""
    if max_count is None:
        if min_count == 0:
            return f"({item})*"
        if min_count == 1:
            return f"({item})+"
        return f"({item}){{{min_count},}}"
    if max_count == 0:
        return '""'
    if min_count == max_count == 1:
        return f"({item})"
    if min_count == 0 and max_count == 1:
        return f"({item})?"
    if min_count == max_count:
        return f"({item}){{{min_count}}}"
    return f"({item}){{{min_count},{max_count}}}"


class GrammarBuilder:
    """Accumulates GBNF rules; identical bodies share one rule name."""

    def __init__(self) -> None:
        self._rules: dict[str, str] = {}
        self._by_body: dict[str, str] = {}

    def has(self, name: str) -> bool:
        return name in self._rules

    def add(self, hint: str, body: str) -> str:
        """Define a rule for ``body`` under a name derived from ``hint``; return the name used."""
        existing = self._by_body.get(body)
        if existing is not None:
            return existing
        name = self._fresh(hint)
        self._rules[name] = body
        self._by_body[body] = name
        return name

    def reserve(self, hint: str) -> str:
        """A fresh rule name to be defined later with :meth:`define` (for recursive rules)."""
        name = self._fresh(hint)
        self._rules[name] = ""
        return name

    def define(self, name: str, body: str) -> None:
        self._rules[name] = body

    def set_root(self, body: str) -> None:
        self._rules["root"] = body

    def render(self) -> str:
        """The grammar text: ``root`` first, then every other rule in definition order."""
        lines = [f"root ::= {self._rules['root']}"]
        lines += [f"{name} ::= {body}" for name, body in self._rules.items() if name != "root"]
        return "\n".join(lines) + "\n"

    def _fresh(self, hint: str) -> str:
        base = _RULE_NAME_BAD.sub("-", hint).strip("-").lower() or "r"
        if base == "root":
            base = "root-value"
        name = base
        n = 1
        while name in self._rules:
            n += 1
            name = f"{base}-{n}"
        return name
