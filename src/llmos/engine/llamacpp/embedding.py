"""Embeddings from a GGUF model through llama.cpp's embedding mode.

A model loaded for generation keeps its generation context (continuous batching, prefix cache)
untouched: the first ``embed`` creates a *second* llama.cpp context over the same weights, with
embeddings on and a pooling type (the model's own, else mean pooling of the last hidden states).
A model loaded with ``LoadSpec.embedding`` already has such a context, and it is used directly.

Many inputs go into one ``llama_decode``, each under its own sequence id; the context's memory is
cleared before and after every group, so nothing of one call leaks into the next.
"""

from __future__ import annotations

import ctypes
import logging
from collections.abc import Sequence
from typing import Any

import llama_cpp
import numpy as np

from llmos.engine.base import LoadSpec, check_embedding_input
from llmos.engine.llamacpp.model import LlamaModel, physical_cores
from llmos.errors import EngineError, EngineGenerateError, InvalidRequest
from llmos.types import TokenId

logger = logging.getLogger(__name__)

DEFAULT_EMBEDDING_CTX = 2048
"""Tokens per input (and per decode) of the embedding context, unless ``extra["embedding_ctx"]``."""
MAX_SEQUENCES = 64
"""Inputs decoded together in one ``llama_decode`` (a power of two: llama.cpp 0.3.36's mean
pooling aborts on a context whose ``n_seq_max`` is odd)."""

_POOLING = {"mean": 1, "cls": 2, "last": 3}


class EmbeddingContext:
    """Pooled embeddings for token lists, batched by sequence id. Not thread-safe.

    ``max_tokens`` is the longest input it accepts; longer inputs raise InvalidRequest naming it.
    """

    def __init__(self, model: LlamaModel, spec: LoadSpec) -> None:
        self._owned = not model.shape.embedding
        self._model = model
        self.n_embd = model.n_embd
        self.n_vocab = model.n_vocab
        if self._owned:
            n_ctx = int(spec.extra.get("embedding_ctx", DEFAULT_EMBEDDING_CTX))
            if model.n_ctx_train > 0:
                n_ctx = min(n_ctx, model.n_ctx_train)
            if n_ctx < 16:
                raise InvalidRequest("embedding_ctx must be at least 16", param="embedding_ctx")
            self.max_tokens = n_ctx
            self.n_seq_max = MAX_SEQUENCES
            self._ctx = _new_context(model, spec, n_ctx, self.n_seq_max)
        else:
            # Non-causal models need a whole batch in one micro-batch, so n_batch bounds an input.
            self.max_tokens = min(model.shape.n_batch, model.shape.n_ctx)
            self.n_seq_max = model.shape.n_seq_max
            self._ctx = model.ctx
        self._memory: Any = llama_cpp.llama_get_memory(self._ctx)
        self._batch: Any = llama_cpp.llama_batch_init(self.max_tokens, 0, 1)

    def embed(
        self, inputs: Sequence[str | Sequence[TokenId]], *, normalize: bool = True
    ) -> list[list[float]]:
        """One vector per input, in order (L2-normalized when ``normalize``). A string is
        tokenized with the model's special tokens (BOS); a token list is used as it is.

        Raises InvalidRequest for an empty input, a token id outside the vocabulary or an input
        longer than ``max_tokens``; EngineGenerateError when llama.cpp fails.
        """
        token_lists = [
            self._model.tokenize(x, add_special=True, parse_special=False) if isinstance(x, str) else list(x)
            for x in inputs
        ]
        for toks in token_lists:
            check_embedding_input(toks, self.max_tokens, self.n_vocab)
        out: list[list[float]] = []
        i = 0
        while i < len(token_lists):
            group: list[list[TokenId]] = []
            used = 0
            while (
                i < len(token_lists)
                and len(group) < self.n_seq_max
                and used + len(token_lists[i]) <= self.max_tokens
            ):
                group.append(token_lists[i])
                used += len(token_lists[i])
                i += 1
            out.extend(self._embed_group(group, normalize))
        return out

    def _embed_group(self, group: list[list[TokenId]], normalize: bool) -> list[list[float]]:
        batch = self._batch
        if batch is None:
            raise EngineError("the embedding context is closed")
        llama_cpp.llama_memory_clear(self._memory, True)
        n = 0
        for sid, toks in enumerate(group):
            for pos, tok in enumerate(toks):
                batch.token[n] = tok
                batch.pos[n] = pos
                batch.n_seq_id[n] = 1
                batch.seq_id[n][0] = sid
                batch.logits[n] = 1  # pooling reads every token's hidden state
                n += 1
        batch.n_tokens = n
        try:
            rc = int(llama_cpp.llama_decode(self._ctx, batch))
            if rc != 0:
                raise EngineGenerateError(f"embedding decode failed with code {rc}")
            rows = np.empty((len(group), self.n_embd), dtype=np.float64)
            for sid in range(len(group)):
                ptr = llama_cpp.llama_get_embeddings_seq(self._ctx, sid)
                if not ptr:
                    raise EngineGenerateError("the model produced no pooled embedding")
                rows[sid] = np.ctypeslib.as_array(
                    ctypes.cast(ptr, ctypes.POINTER(ctypes.c_float)), shape=(self.n_embd,)
                )
        finally:
            llama_cpp.llama_memory_clear(self._memory, True)
        if normalize:
            norms = np.linalg.norm(rows, axis=1, keepdims=True)
            rows = rows / np.where(norms > 0, norms, 1.0)
        return [[float(v) for v in row] for row in rows]

    def close(self) -> None:
        if self._batch is not None:
            llama_cpp.llama_batch_free(self._batch)
            self._batch = None
        if self._owned and self._ctx is not None:
            llama_cpp.llama_free(self._ctx)
        self._ctx = None


def _new_context(model: LlamaModel, spec: LoadSpec, n_ctx: int, n_seq_max: int) -> Any:
    """A context on ``model``'s weights with embeddings on, one micro-batch holding ``n_ctx`` tokens."""
    weights = llama_cpp.llama_get_model(model.ctx)
    threads = spec.n_threads or physical_cores()
    raw = spec.extra.get("pooling")
    if raw is not None and str(raw) not in _POOLING:
        raise InvalidRequest(f"unknown pooling {raw!r}; use one of {sorted(_POOLING)}", param="pooling")

    def create(pooling: int) -> Any:
        cparams = llama_cpp.llama_context_default_params()
        cparams.n_ctx = n_ctx
        cparams.n_batch = n_ctx
        cparams.n_ubatch = n_ctx
        cparams.n_seq_max = n_seq_max
        cparams.n_threads = threads
        cparams.n_threads_batch = threads
        cparams.embeddings = True
        cparams.pooling_type = pooling
        cparams.no_perf = True
        if hasattr(cparams, "kv_unified"):
            cparams.kv_unified = True
        ctx = llama_cpp.llama_init_from_model(weights, cparams)
        if not ctx:
            raise EngineError(f"llama.cpp could not create an embedding context (n_ctx={n_ctx})")
        return ctx

    logger.info("embedding context: n_ctx=%d, %d sequences per decode", n_ctx, n_seq_max)
    if raw is not None:
        return create(_POOLING[str(raw)])
    arch = model.meta("general.architecture") or ""
    if model.meta(f"{arch}.pooling_type") is not None:  # an embedding model: its own pooling
        ctx = create(int(llama_cpp.LLAMA_POOLING_TYPE_UNSPECIFIED))
        if llama_cpp.llama_pooling_type(ctx) != llama_cpp.LLAMA_POOLING_TYPE_NONE:
            return ctx
        llama_cpp.llama_free(ctx)
    # A generative model: mean-pool its last hidden states.
    return create(int(llama_cpp.LLAMA_POOLING_TYPE_MEAN))
