"""Retrieval-augmented chat: the ``collections`` extension of ``/v1/chat/completions``.

When a chat request names collections, the last user message is the query; the best chunks of
the caller's tenant's collections go into the system message (numbered, with their document
names), and the response carries ``citations`` — in the completion, or on each streamed chunk
that finishes a choice. Only what fits goes in: the passages share the model's context per
sequence with the messages and the answer (a third of it, at most ``max_tokens``), best first;
the citations name the passages that went in.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from llmos.domain.data import SearchHit, Spent
from llmos.kernel.kernel import Kernel
from llmos.security.principal import Principal
from llmos.server.auth import require_visible_model
from llmos.server.schemas.chat import ChatCompletionRequest, Citation

DEFAULT_TOP_K = 4
MAX_CONTEXT_CHARS = 12_000
"""Retrieved text is cut off here (about 3,000 tokens) however large the model's context."""
CHARS_PER_TOKEN = 3
"""A cautious rate for English and Markdown (tokenizers average 3.5 to 4.5)."""
TEMPLATE_TOKENS = 48
"""What a chat template adds around the messages."""
DEFAULT_ANSWER_TOKENS = 256
INSTRUCTIONS = (
    "Answer the user's question using the numbered context passages below. Cite the passages you "
    "use by their number in brackets, like [1]. If the context does not contain the answer, say so."
)


@dataclass(frozen=True)
class Retrieval:
    messages: list[dict[str, Any]]
    citations: list[Citation] | None
    """None when the request named no collections (the response then has no ``citations``)."""

    def citations_json(self) -> list[dict[str, Any]] | None:
        return None if self.citations is None else [c.model_dump(mode="json") for c in self.citations]

    def add_to(self, payload: dict[str, Any]) -> dict[str, Any]:
        """``payload`` with ``citations`` set, or without the key when nothing was retrieved."""
        if self.citations is None:
            payload.pop("citations", None)
        else:
            payload["citations"] = self.citations_json()
        return payload


def _query(messages: list[dict[str, Any]]) -> str:
    for m in reversed(messages):
        if m.get("role") == "user" and str(m.get("content") or "").strip():
            return str(m["content"])
    return ""


def _context(hits: list[SearchHit], max_chars: int) -> tuple[str, list[SearchHit]]:
    """The system text with as many passages as ``max_chars`` holds (the last one cut short if
    need be), and the hits that went in."""
    parts = [INSTRUCTIONS]
    used: list[SearchHit] = []
    room = max_chars
    for n, h in enumerate(hits, start=1):
        head = f"\n\n[{n}] {h.chunk.document} (chunk {h.chunk.position})\n"
        text = h.chunk.text.strip()[: max(0, room - len(head))]
        if len(text) < min(200, len(h.chunk.text.strip())):
            break  # a stub of a passage helps nobody
        room -= len(head) + len(text)
        used.append(h)
        parts.append(head + text)
    return "".join(parts), used


async def _context_chars(kernel: Kernel, body: ChatCompletionRequest, messages: list[dict[str, Any]]) -> int:
    """Characters of passages that fit beside ``messages`` and the answer in one sequence."""
    per_sequence = await kernel.context_per_sequence(body.model)
    answer = min(body.max_completion_tokens or body.max_tokens or DEFAULT_ANSWER_TOKENS, per_sequence // 3)
    written = len(INSTRUCTIONS) + sum(len(str(m.get("content") or "")) for m in messages)
    left = per_sequence - answer - TEMPLATE_TOKENS - written // CHARS_PER_TOKEN
    return min(MAX_CONTEXT_CHARS, max(0, left) * CHARS_PER_TOKEN)


async def retrieve(
    kernel: Kernel,
    principal: Principal,
    body: ChatCompletionRequest,
    messages: list[dict[str, Any]],
    spent: Spent | None = None,
) -> Retrieval:
    """``messages`` with retrieved context added, and the citations. Needs the ``data`` scope,
    and the collections' embedding models must be ones the caller may use (ModelNotFound, as
    for a missing one); ``spent`` hears of the tokens the query's embedding takes. Raises
    NotFound for a collection the caller's tenant does not have."""
    if body.collections is None:
        return Retrieval(messages, None)
    principal.require("data")
    options = body.retrieval
    mode = options.mode if options is not None else "hybrid"
    if mode != "keyword":
        for col in await kernel.data.find_collections(principal.tenant, body.collections):
            require_visible_model(principal, col.embedding_model)
    query = _query(messages)
    if not query:
        return Retrieval(messages, [])
    hits = await kernel.data.search(
        principal.tenant,
        body.collections,
        query,
        top_k=options.top_k if options is not None else DEFAULT_TOP_K,
        mode=mode,
        filters=options.filters if options is not None else None,
        spent=spent,
    )
    context, hits = _context(hits, await _context_chars(kernel, body, messages))
    if not hits:
        return Retrieval(messages, [])
    out = [dict(m) for m in messages]
    if out and out[0].get("role") in ("system", "developer"):
        out[0]["content"] = f"{out[0].get('content') or ''}\n\n{context}".strip()
    else:
        out.insert(0, {"role": "system", "content": context})
    citations = [
        Citation(
            document=h.chunk.document,
            document_id=h.chunk.document_id,
            chunk=h.chunk.position,
            score=h.score,
            collection=h.chunk.collection,
            version=h.chunk.version,
        )
        for h in hits
    ]
    return Retrieval(out, citations)
