"""Counting tokens for chunking and dataset statistics.

A :class:`Tokenizer` gives the character span of every token in a text. When the embedding
model's own tokenizer is not at hand (the model lives in a worker process, or is not pulled
yet), :class:`ApproxTokenizer` stands in: words and single punctuation marks are tokens, and a
word longer than ``chars_per_piece`` characters counts as one token per started piece (a word
with non-ASCII letters counts one token per character, as WordPiece splits CJK text). On
English text this *over*-counts WordPiece/BPE tokens by roughly 10-30%, which is the safe side:
a chunk sized in approximate tokens never overflows the embedding model's window.
"""

from __future__ import annotations

import re
from typing import Protocol

_TOKEN = re.compile(r"\w+|[^\w\s]", re.UNICODE)


class Tokenizer(Protocol):
    def spans(self, text: str) -> list[tuple[int, int]]:
        """``(start, end)`` character offsets of each token, in order."""
        ...

    def count(self, text: str) -> int:
        """How many tokens ``text`` holds."""
        ...


class ApproxTokenizer:
    """Words and punctuation marks; long words split every ``chars_per_piece`` characters."""

    name = "approx"

    def __init__(self, chars_per_piece: int = 6) -> None:
        self.chars_per_piece = chars_per_piece

    def spans(self, text: str) -> list[tuple[int, int]]:
        out: list[tuple[int, int]] = []
        for m in _TOKEN.finditer(text):
            start, end = m.span()
            step = self.chars_per_piece if m.group().isascii() else 1
            while end - start > step:
                out.append((start, start + step))
                start += step
            out.append((start, end))
        return out

    def count(self, text: str) -> int:
        step = self.chars_per_piece
        return sum(
            -(-len(w) // step) if w.isascii() else len(w) for w in (m.group() for m in _TOKEN.finditer(text))
        )


def default_tokenizer() -> Tokenizer:
    return ApproxTokenizer()
