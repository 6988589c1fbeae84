"""Embeddings in the kernel: checking a request's inputs and running them on a resident model.

An embeddings request bypasses the generation scheduler (it holds no slot and streams nothing),
but never runs while the engine steps: the model's engine core embeds between two steps. Inputs
are tokenized in one call (on the core's frontend thread), then embedded in chunks of one call
each, so a large request lets generation steps run between chunks.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Union

from llmos.domain.manifest import Manifest
from llmos.errors import InvalidRequest
from llmos.kernel.loader import LoadedModel
from llmos.kernel.types import Embeddings

MAX_INPUTS = 2048
"""Inputs in one request (OpenAI's bound)."""
MAX_TOTAL_TOKENS = 300_000
"""Tokens summed over the inputs of one request (OpenAI's bound)."""
CHUNK_INPUTS = 64
CHUNK_TOKENS = 4096
"""One engine call embeds at most this many inputs and tokens."""
EMBEDDING_FORMATS = frozenset({"sentence-transformers"})
"""Model formats that only embed (they cannot generate text)."""

EmbedInputs = Union[Sequence[str], Sequence[Sequence[int]]]  # noqa: UP007 - a runtime alias


def check_inputs(inputs: EmbedInputs) -> list[str] | list[list[int]]:
    """The inputs as a list of strings or a list of token lists. Raises InvalidRequest when
    there are none or too many, when strings and token lists are mixed, or one is empty."""
    items = list(inputs)
    if not items:
        raise InvalidRequest("input must not be empty", param="input")
    if len(items) > MAX_INPUTS:
        raise InvalidRequest(
            f"input holds {len(items)} items; at most {MAX_INPUTS} may be embedded in one request",
            param="input",
        )
    if all(isinstance(x, str) for x in items):
        texts = [str(x) for x in items]
        for i, text in enumerate(texts):
            if not text:
                raise InvalidRequest(f"input[{i}] is an empty string; cannot embed it", param="input")
        return texts
    token_lists: list[list[int]] = []
    for i, x in enumerate(items):
        toks = (
            [t for t in x if isinstance(t, int) and not isinstance(t, bool)] if not isinstance(x, str) else []
        )
        if isinstance(x, str) or len(toks) != len(x):
            raise InvalidRequest(
                "input must be a string, a list of strings, a list of token ids or a list of such lists",
                param="input",
            )
        if not toks:
            raise InvalidRequest(f"input[{i}] is an empty token list; cannot embed it", param="input")
        token_lists.append(toks)
    return token_lists


def require_generative(name: str, manifest: Manifest) -> None:
    """Raises InvalidRequest when ``manifest`` is an embedding-only model."""
    if manifest.format in EMBEDDING_FORMATS:
        raise InvalidRequest(
            f"model {name} is an embedding model; it cannot generate text (use /v1/embeddings)",
            param="model",
        )


async def _tokenize_all(loaded: LoadedModel, inputs: list[str] | list[list[int]]) -> list[list[int]]:
    texts = [x for x in inputs if isinstance(x, str)]
    if not texts:
        return [x for x in inputs if not isinstance(x, str)]
    return await loaded.core.tokenize(texts, add_special=True, parse_special=False)


def _chunks(token_lists: list[list[int]]) -> Iterator[list[list[int]]]:
    chunk: list[list[int]] = []
    used = 0
    for toks in token_lists:
        if chunk and (len(chunk) >= CHUNK_INPUTS or used + len(toks) > CHUNK_TOKENS):
            yield chunk
            chunk, used = [], 0
        chunk.append(toks)
        used += len(toks)
    if chunk:
        yield chunk


async def embed_on(
    loaded: LoadedModel, name: str, inputs: list[str] | list[list[int]], *, dimensions: int | None = None
) -> Embeddings:
    """Embed checked ``inputs`` on a resident model; vectors come back L2-normalized, in order.

    Raises InvalidRequest for ``dimensions`` other than the model's, a token id outside its
    vocabulary, too many tokens in all, or (from the engine) an input longer than its context.
    """
    info = loaded.info
    if dimensions is not None and dimensions != info.embedding_dim:
        raise InvalidRequest(
            f"model {name} cannot change the size of its embeddings: they have {info.embedding_dim} "
            f"dimensions (dimensions={dimensions} was asked)",
            param="dimensions",
        )
    token_lists = await _tokenize_all(loaded, inputs)
    for i, toks in enumerate(token_lists):
        if not toks:
            raise InvalidRequest(f"input[{i}] has no tokens; cannot embed it", param="input")
        if min(toks) < 0 or max(toks) >= info.n_vocab:
            raise InvalidRequest(
                f"input[{i}] holds a token id outside the model's vocabulary [0, {info.n_vocab})",
                param="input",
            )
    total = sum(len(t) for t in token_lists)
    if total > MAX_TOTAL_TOKENS:
        raise InvalidRequest(
            f"the inputs are {total} tokens in all; at most {MAX_TOTAL_TOKENS} may be embedded in one "
            "request",
            param="input",
        )
    vectors: list[list[float]] = []
    for chunk in _chunks(token_lists):
        vectors.extend(await loaded.core.embed(chunk, normalize=True))
    return Embeddings(model=name, digest=loaded.manifest.digest, vectors=vectors, prompt_tokens=total)
