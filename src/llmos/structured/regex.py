"""Translate a safe subset of regular expressions (JSON Schema ``pattern``) into GBNF.

The grammar produces the *JSON-encoded* string body, so characters that JSON must escape are
written escaped (``"`` as ``\\"``, ``\\`` as ``\\\\``). The subset: literals, ``.``, character
classes ``[...]`` / ``[^...]``, ``\\d`` ``\\w`` ``\\s``, escaped punctuation, groups ``(...)`` and
``(?:...)``, alternation ``|``, quantifiers ``* + ? {n} {n,} {n,m}``, and ``^`` / ``$`` only at the
very start / end. A pattern without ``^`` (or ``$``) may be preceded (followed) by any text, as
JSON Schema's search semantics say. Everything else (lookaround, backreferences, lazy or possessive
quantifiers, ``\\b``, Unicode classes...) raises :class:`RegexUnsupported`.

Character sets are sometimes narrowed to stay safe: ``.`` and ``[^...]`` never produce a character
JSON must escape, and ``\\s`` produces a space only. The grammar therefore accepts a subset of the
strings the pattern matches, never a string outside it.
"""

from __future__ import annotations

from llmos.structured.gbnf import class_char, literal, repeat

PLAIN_CHAR = r'[^"\\\x7F\x00-\x1F]'
_JSON_UNSAFE_IN_CLASS = '\\"\\\\\\x7F\\x00-\\x1F'
_SHORTHANDS = {"d": "0-9", "w": "a-zA-Z0-9_", "s": " "}
_META = set(".^$*+?()[]{}|\\/-")
MAX_REPEAT = 1000


class RegexUnsupported(ValueError):
    """The pattern uses a construct outside the translatable subset."""


def regex_to_gbnf(pattern: str) -> str:
    """A GBNF expression for the JSON string bodies whose decoded value matches ``pattern``."""
    anchored_start = pattern.startswith("^")
    anchored_end = pattern.endswith("$") and not pattern.endswith("\\$")
    core = pattern[1 if anchored_start else 0 : len(pattern) - 1 if anchored_end else len(pattern)]
    parser = _Parser(core)
    body = parser.alternation()
    if parser.pos != len(core):
        raise RegexUnsupported(f"unexpected {core[parser.pos]!r} at offset {parser.pos}")
    parts = [] if anchored_start else [f"{PLAIN_CHAR}*"]
    parts.append(f"({body})")
    if not anchored_end:
        parts.append(f"{PLAIN_CHAR}*")
    return " ".join(parts)


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    def _peek(self) -> str | None:
        return self.text[self.pos] if self.pos < len(self.text) else None

    def _take(self) -> str:
        if self.pos >= len(self.text):
            raise RegexUnsupported("unexpected end of pattern")
        ch = self.text[self.pos]
        self.pos += 1
        return ch

    def alternation(self) -> str:
        branches = [self._sequence()]
        while self._peek() == "|":
            self.pos += 1
            branches.append(self._sequence())
        return " | ".join(branches)

    def _sequence(self) -> str:
        items: list[str] = []
        while (ch := self._peek()) is not None and ch not in "|)":
            atom = self._atom()
            items.append(self._quantified(atom))
        return " ".join(items) if items else '""'

    def _quantified(self, atom: str) -> str:
        ch = self._peek()
        if ch is None or ch not in "*+?{":
            return atom
        self.pos += 1
        if ch == "{":
            low, high = self._braces()
        else:
            low, high = {"*": (0, None), "+": (1, None), "?": (0, 1)}[ch]
        if self._peek() in ("?", "+"):
            raise RegexUnsupported("lazy or possessive quantifiers")
        return repeat(atom, low, high)

    def _braces(self) -> tuple[int, int | None]:
        end = self.text.find("}", self.pos)
        if end < 0:
            raise RegexUnsupported("unterminated '{'")
        spec = self.text[self.pos : end]
        self.pos = end + 1
        low_s, sep, high_s = spec.partition(",")
        if not low_s.isdigit() or (high_s and not high_s.isdigit()):
            raise RegexUnsupported(f"bad repetition '{{{spec}}}'")
        low = int(low_s)
        high = low if not sep else (int(high_s) if high_s else None)
        if low > MAX_REPEAT or (high is not None and (high > MAX_REPEAT or high < low)):
            raise RegexUnsupported(f"repetition '{{{spec}}}' out of range")
        return low, high

    def _atom(self) -> str:
        ch = self._take()
        if ch == "(":
            if self.text.startswith("?:", self.pos):
                self.pos += 2
            elif self._peek() == "?":
                raise RegexUnsupported("lookaround and named groups")
            inner = self.alternation()
            if self._take() != ")":
                raise RegexUnsupported("unbalanced '('")
            return f"({inner})"
        if ch == "[":
            return self._char_class()
        if ch == ".":
            return PLAIN_CHAR
        if ch == "\\":
            return self._escape()
        if ch in "*+?{)]}^$|":
            raise RegexUnsupported(f"unexpected {ch!r}")
        return _json_literal(ch)

    def _escape(self) -> str:
        ch = self._take()
        if ch in _SHORTHANDS:
            return f"[{_SHORTHANDS[ch]}]"
        if ch in _META:
            return _json_literal(ch)
        if ch in "nrt":
            return literal("\\" + ch)
        raise RegexUnsupported(f"escape '\\{ch}'")

    def _char_class(self) -> str:
        negated = self._peek() == "^"
        if negated:
            self.pos += 1
        members: list[str] = []
        first = True
        while True:
            ch = self._take()
            if ch == "]" and not first:
                break
            first = False
            if ch == "\\":
                esc = self._take()
                if esc in _SHORTHANDS and not negated:
                    members.append(_SHORTHANDS[esc])
                    continue
                if esc not in _META and esc not in "]":
                    raise RegexUnsupported(f"escape '\\{esc}' in a character class")
                ch = esc
            if ch in '"\\' or ord(ch) < 0x20 or ord(ch) == 0x7F:
                raise RegexUnsupported("a character class with a character JSON must escape")
            if self._peek() == "-" and self.pos + 1 < len(self.text) and self.text[self.pos + 1] != "]":
                self.pos += 1
                end = self._take()
                if end == "\\":
                    end = self._take()
                if end in '"\\' or ord(end) < ord(ch):
                    raise RegexUnsupported(f"bad range {ch}-{end}")
                if ord(ch) < ord('"') <= ord(end) or ord(ch) < ord("\\") <= ord(end):
                    raise RegexUnsupported("a range over a character JSON must escape")
                members.append(f"{class_char(ch)}-{class_char(end)}")
            else:
                members.append(class_char(ch))
        if negated:
            return f"[^{''.join(members)}{_JSON_UNSAFE_IN_CLASS}]"
        return f"[{''.join(members)}]"


def _json_literal(ch: str) -> str:
    if ch == '"':
        return literal('\\"')
    if ch == "\\":
        return literal("\\\\")
    if ord(ch) < 0x20 or ord(ch) == 0x7F:
        raise RegexUnsupported("a control character")
    return literal(ch)
