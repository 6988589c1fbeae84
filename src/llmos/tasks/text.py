"""Pre-processing of a task's input text: HTML stripping, normalization, length limits.

Every step is a pure function of its input, so the same text always yields the same prompt.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from html.parser import HTMLParser
from typing import Literal

InputFormat = Literal["auto", "text", "html"]

_TAG = re.compile(r"<\s*/?\s*[a-zA-Z][a-zA-Z0-9-]*(\s[^<>]*)?/?\s*>|<!--|<!DOCTYPE", re.IGNORECASE)
_PARAGRAPH = frozenset(
    {
        "address", "article", "aside", "blockquote", "dl", "div", "figcaption", "figure", "footer",
        "h1", "h2", "h3", "h4", "h5", "h6", "header", "hr", "main", "nav", "ol", "p", "pre", "section",
        "table", "ul",
    }
)  # fmt: skip
_LINE = frozenset({"br", "li", "tr", "dt", "dd"})
_CELL = frozenset({"td", "th"})
_HIDDEN = frozenset({"script", "style", "noscript", "template", "head", "svg", "iframe"})
_SPACES = re.compile(r"[^\S\n]+")
_BLANK_LINES = re.compile(r"\n[^\S\n]*\n(?:[^\S\n]*\n)+")
_SPACE_AROUND_NEWLINE = re.compile(r" ?\n ?")


def looks_like_html(text: str) -> bool:
    """Whether ``text`` contains markup (a tag, a comment or a doctype)."""
    return _TAG.search(text) is not None


class _TextExtractor(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._hidden = 0

    def _break(self, tag: str) -> None:
        if tag in _PARAGRAPH:
            self.parts.append("\n\n")
        elif tag in _LINE:
            self.parts.append("\n")
        elif tag in _CELL:
            self.parts.append(" ")

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _HIDDEN:
            self._hidden += 1
        else:
            self._break(tag)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self._break(tag)

    def handle_endtag(self, tag: str) -> None:
        if tag in _HIDDEN:
            self._hidden = max(0, self._hidden - 1)
        elif tag in _PARAGRAPH:
            self.parts.append("\n\n")

    def handle_data(self, data: str) -> None:
        if not self._hidden:
            self.parts.append(data)


def strip_html(text: str) -> str:
    """The visible text of an HTML fragment or page: tags dropped, entities decoded, scripts and
    styles removed, block elements (paragraphs, list items, headings...) on their own lines."""
    parser = _TextExtractor()
    parser.feed(text)
    parser.close()
    return "".join(parser.parts)


def normalize(text: str) -> str:
    """NFKC-normalized text with control characters removed, runs of spaces collapsed to one,
    at most one blank line between paragraphs, and no leading or trailing whitespace."""
    text = unicodedata.normalize("NFKC", text).replace("\r\n", "\n").replace("\r", "\n")
    text = "".join(
        ch for ch in text if ch in "\n\t" or unicodedata.category(ch) not in ("Cc", "Cf", "Co", "Cs")
    )
    text = _SPACES.sub(" ", text)
    text = _SPACE_AROUND_NEWLINE.sub("\n", text)
    text = _BLANK_LINES.sub("\n\n", text)
    return text.strip()


def truncate(text: str, max_chars: int) -> str:
    """``text`` cut to at most ``max_chars`` characters, at a word boundary when one is near."""
    if len(text) <= max_chars:
        return text
    cut = text[:max_chars]
    boundary = max(cut.rfind(" "), cut.rfind("\n"))
    if boundary >= max_chars * 0.8:
        cut = cut[:boundary]
    return cut.rstrip()


@dataclass(frozen=True)
class PreparedText:
    """A task's input after pre-processing, with what was done to it."""

    text: str
    original_chars: int
    html_stripped: bool
    truncated: bool

    @property
    def chars(self) -> int:
        return len(self.text)


def prepare(text: str, *, input_format: InputFormat = "auto", max_chars: int) -> PreparedText:
    """Strip HTML (when ``input_format`` is ``html``, or ``auto`` and the text has markup),
    normalize, then truncate to ``max_chars``; the result says whether it was cut."""
    is_html = input_format == "html" or (input_format == "auto" and looks_like_html(text))
    cleaned = normalize(strip_html(text) if is_html else text)
    cut = truncate(cleaned, max_chars)
    return PreparedText(
        text=cut, original_chars=len(text), html_stripped=is_html, truncated=len(cut) < len(cleaned)
    )
