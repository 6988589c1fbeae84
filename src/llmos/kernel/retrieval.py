"""Retrieval-augmented chat: a request's ``retrieval`` (the ``collections`` extension of
``/v1/chat/completions``).

The last user message is the query; the best chunks of the tenant's collections go into the
system message (numbered, with their document names), and the answer carries the citations.
Only what fits goes in: the passages share the model's context per sequence with the messages
and the answer (a third of it, at most ``max_tokens``), best first; the citations name the
passages that went in.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from llmos.data.service import DataService
from llmos.domain.data import SearchHit
from llmos.errors import ModelNotFound
from llmos.kernel.inference_request import InferenceRequest, RetrievalSpec
from llmos.kernel.types import Citation
from llmos.security.principal import Principal
from llmos.types import ChatMessage

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

ContextSize = Callable[[str], Awaitable[int]]
"""The tokens one sequence of a model may hold (:meth:`llmos.kernel.Kernel.context_per_sequence`)."""


@dataclass(frozen=True)
class Retrieved:
    messages: tuple[ChatMessage, ...]
    citations: tuple[Citation, ...] | None
    """None when the request named no collections (the answer then has no citations)."""
    tokens: int = 0
    """Tokens spent embedding the query, on the caller's behalf."""


def _query(messages: Sequence[ChatMessage]) -> str:
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


def _context_chars(per_sequence: int, request: InferenceRequest, messages: Sequence[ChatMessage]) -> int:
    """Characters of passages that fit beside ``messages`` and the answer in one sequence."""
    answer = min(request.sampling.max_tokens or DEFAULT_ANSWER_TOKENS, per_sequence // 3)
    written = len(INSTRUCTIONS) + sum(len(str(m.get("content") or "")) for m in messages)
    left = per_sequence - answer - TEMPLATE_TOKENS - written // CHARS_PER_TOKEN
    return min(MAX_CONTEXT_CHARS, max(0, left) * CHARS_PER_TOKEN)


def require_visible_model(principal: Principal, name: str) -> None:
    """Raise ModelNotFound (404) unless ``principal``'s model patterns allow ``name``: a model a key
    may not use is hidden from it, worded exactly like one that does not exist."""
    if not principal.allows_model(name):
        raise ModelNotFound(
            f"model {name!r} not found; see 'llmos list', or 'llmos pull' / 'llmos import' it", param="model"
        )


async def retrieve(data: DataService, context_size: ContextSize, request: InferenceRequest) -> Retrieved:
    """The request's messages with retrieved context added, and the citations.

    With a ``principal``: needs its ``data`` scope, and the collections' embedding models must be
    ones it may use (ModelNotFound, as for a missing one). Raises NotFound for a collection the
    tenant does not have."""
    messages = request.messages or ()
    spec: RetrievalSpec | None = request.retrieval
    if spec is None:
        return Retrieved(messages, None)
    tenant, principal = request.meta.tenant, request.principal
    if principal is not None:
        principal.require("data")
        if spec.mode != "keyword":
            for col in await data.find_collections(tenant, list(spec.collections)):
                require_visible_model(principal, col.embedding_model)
    query = _query(messages)
    if not query:
        return Retrieved(messages, ())
    spent: list[int] = []
    hits = await data.search(
        tenant,
        list(spec.collections),
        query,
        top_k=spec.top_k,
        mode=spec.mode,
        filters=spec.filters,
        spent=spent.append,
    )
    context, hits = _context(hits, _context_chars(await context_size(request.model), request, messages))
    if not hits:
        return Retrieved(messages, (), sum(spent))
    out = [dict(m) for m in messages]
    if out and out[0].get("role") in ("system", "developer"):
        out[0]["content"] = f"{out[0].get('content') or ''}\n\n{context}".strip()
    else:
        out.insert(0, {"role": "system", "content": context})
    citations = tuple(
        Citation(
            document=h.chunk.document,
            document_id=h.chunk.document_id,
            chunk=h.chunk.position,
            score=h.score,
            collection=h.chunk.collection,
            version=h.chunk.version,
        )
        for h in hits
    )
    return Retrieved(tuple(out), citations, sum(spent))
