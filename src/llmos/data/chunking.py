"""Token-aware chunking with overlap.

A document's text is cut into windows of at most ``max_tokens`` tokens (as counted by a
:class:`~llmos.data.tokens.Tokenizer`); consecutive windows share about ``overlap`` tokens, so a
sentence cut by a boundary is whole in at least one chunk. A window prefers to end at a paragraph
break, then a sentence end, then any whitespace, as long as that keeps it at least half full.
"""

from __future__ import annotations

from dataclasses import dataclass

from llmos.data.tokens import Tokenizer
from llmos.errors import InvalidRequest


@dataclass(frozen=True)
class TextChunk:
    text: str
    start: int
    end: int
    token_count: int


def check_chunking(max_tokens: int, overlap: int) -> None:
    """Raises InvalidRequest unless 16 ≤ max_tokens ≤ 8192 and 0 ≤ overlap < max_tokens / 2."""
    if not 16 <= max_tokens <= 8192:
        raise InvalidRequest("chunk_tokens must be between 16 and 8192", param="chunk_tokens")
    if not 0 <= overlap < max_tokens // 2:
        raise InvalidRequest(
            "chunk_overlap must be at least 0 and less than half of chunk_tokens", param="chunk_overlap"
        )


def _break_score(text: str, token_end: int, next_start: int) -> int:
    gap = text[token_end:next_start]
    if "\n\n" in gap or "\r\n\r\n" in gap:
        return 3
    if text[token_end - 1 : token_end] in ".!?" and gap:
        return 2
    if gap:
        return 1
    return 0


def chunk_text(text: str, tokenizer: Tokenizer, max_tokens: int, overlap: int) -> list[TextChunk]:
    """``text`` cut into overlapping token windows (empty list for blank text)."""
    check_chunking(max_tokens, overlap)
    spans = tokenizer.spans(text)
    if not spans:
        return []
    chunks: list[TextChunk] = []
    n = len(spans)
    i = 0
    while i < n:
        hard_end = min(i + max_tokens, n)
        end = hard_end
        if hard_end < n:
            best, best_score = hard_end, 0
            for j in range(hard_end, i + max(1, max_tokens // 2), -1):
                score = _break_score(text, spans[j - 1][1], spans[j][0])
                if score > best_score:
                    best, best_score = j, score
                    if score == 3:
                        break
            end = best
        start_char, end_char = spans[i][0], spans[end - 1][1]
        chunks.append(TextChunk(text[start_char:end_char], start_char, end_char, end - i))
        if end >= n:
            break
        i = max(end - overlap, i + 1)
    return chunks
