"""Per-sequence sampler chains (``llama_sampler_chain_*``) and logprobs from a logits row."""

from __future__ import annotations

import ctypes
import random
from collections.abc import Callable, Iterable
from typing import Any

import llama_cpp
import numpy as np

from llmos.engine.base import SamplingParams, TokenLogprob
from llmos.errors import EngineError, InvalidRequest
from llmos.types import TokenId

LLAMA_DEFAULT_SEED = 0xFFFFFFFF


def validate(params: SamplingParams) -> None:
    """Raise InvalidRequest for parameters no sampler can honour."""
    if params.temperature < 0:
        raise InvalidRequest("temperature must be >= 0", param="temperature")
    if not 0.0 < params.top_p <= 1.0:
        raise InvalidRequest("top_p must be in (0, 1]", param="top_p")
    if not 0.0 <= params.min_p <= 1.0:
        raise InvalidRequest("min_p must be in [0, 1]", param="min_p")
    if params.top_k < 0:
        raise InvalidRequest("top_k must be >= 0 (0 disables it)", param="top_k")
    if params.max_tokens < 1:
        raise InvalidRequest("max_tokens must be >= 1", param="max_tokens")
    if params.repeat_last_n < -1:
        raise InvalidRequest("repeat_last_n must be >= -1", param="repeat_last_n")
    if params.logprobs is not None and not 0 <= params.logprobs <= 20:
        raise InvalidRequest("logprobs must be between 0 and 20", param="logprobs")


def check_logit_bias(params: SamplingParams, n_vocab: int) -> None:
    """Raise InvalidRequest for a ``logit_bias`` token id outside the model's vocabulary."""
    outside = [t for t, _ in params.logit_bias if not 0 <= t < n_vocab]
    if outside:
        raise InvalidRequest(
            f"logit_bias names token id {outside[0]}; this model's vocabulary has ids 0 to {n_vocab - 1}",
            param="logit_bias",
        )


class SamplerChain:
    """One sequence's sampler: logit bias → grammar → penalties → top-k → top-p → min-p →
    temperature → dist, or greedy when ``temperature == 0``. Owns a native chain; call :meth:`close`."""

    def __init__(self, params: SamplingParams, vocab: Any, n_vocab: int) -> None:
        validate(params)
        check_logit_bias(params, n_vocab)
        self.params = params
        self._n_vocab = n_vocab
        self.greedy_only = (
            params.temperature == 0.0
            and not params.grammar
            and not params.logit_bias
            and params.repeat_penalty == 1.0
            and params.presence_penalty == 0.0
            and params.frequency_penalty == 0.0
        )
        """Plain argmax: sampled from the logits row directly (llama.cpp's greedy sampler first
        copies the whole vocabulary into a candidate array for every token; the pick is the same,
        the first highest logit)."""
        chain: Any = llama_cpp.llama_sampler_chain_init(llama_cpp.llama_sampler_chain_default_params())
        self._chain = chain
        self._grammar: Any = None
        add = llama_cpp.llama_sampler_chain_add
        if params.logit_bias:
            biases = (llama_cpp.llama_logit_bias * len(params.logit_bias))(
                *(llama_cpp.llama_logit_bias(token, bias) for token, bias in params.logit_bias)
            )
            add(chain, llama_cpp.llama_sampler_init_logit_bias(n_vocab, len(params.logit_bias), biases))
        if params.grammar:
            grammar = llama_cpp.llama_sampler_init_grammar(vocab, params.grammar.encode("utf-8"), b"root")
            if not grammar:
                self.close()
                raise InvalidRequest("the grammar does not parse (GBNF)", param="grammar")
            self._grammar = grammar
            add(chain, grammar)
        if params.repeat_penalty != 1.0 or params.presence_penalty != 0.0 or params.frequency_penalty != 0.0:
            add(
                chain,
                llama_cpp.llama_sampler_init_penalties(
                    n_vocab,
                    params.repeat_last_n,
                    params.repeat_penalty,
                    params.frequency_penalty,
                    params.presence_penalty,
                ),
            )
        if params.temperature == 0.0:
            add(chain, llama_cpp.llama_sampler_init_greedy())
        else:
            if params.top_k > 0:
                add(chain, llama_cpp.llama_sampler_init_top_k(params.top_k))
            if params.top_p < 1.0:
                add(chain, llama_cpp.llama_sampler_init_top_p(params.top_p, 1))
            if params.min_p > 0.0:
                add(chain, llama_cpp.llama_sampler_init_min_p(params.min_p, 1))
            add(chain, llama_cpp.llama_sampler_init_temp(params.temperature))
            seed = params.seed if params.seed is not None else random.getrandbits(32)
            add(chain, llama_cpp.llama_sampler_init_dist(seed & 0xFFFFFFFF))

    def sample(self, ctx: Any, index: int) -> TokenId:
        """Sample from the logits row ``index`` of the last decode, and accept the token."""
        if self.greedy_only:
            return int(logits_row(ctx, index, self._n_vocab).argmax())
        return int(llama_cpp.llama_sampler_sample(self._chain, ctx, index))

    def accept_history(self, tokens: Iterable[TokenId]) -> None:
        """Replay tokens already generated (after a restore) so penalties and grammar see them."""
        for t in tokens:
            llama_cpp.llama_sampler_accept(self._chain, t)

    def close(self) -> None:
        if self._chain is not None:
            llama_cpp.llama_sampler_free(self._chain)
            self._chain = None


def logprobs_at(
    ctx: Any, index: int, n_vocab: int, chosen: TokenId, top: int, text_of: Callable[[TokenId], str]
) -> TokenLogprob:
    """Log-softmax of the raw logits row ``index`` (before sampling transforms)."""
    row = logits_row(ctx, index, n_vocab)
    m = float(row.max())
    logz = m + float(np.log(np.exp(row - m).sum()))
    alternatives: tuple[tuple[str, float], ...] = ()
    if top > 0:
        idx = np.argpartition(row, -top)[-top:]
        idx = idx[np.argsort(row[idx])[::-1]]
        alternatives = tuple((text_of(int(i)), float(row[i]) - logz) for i in idx)
    return TokenLogprob(
        token=text_of(chosen), token_id=chosen, logprob=float(row[chosen]) - logz, top=alternatives
    )


def logits_row(ctx: Any, index: int, n_vocab: int) -> np.ndarray[Any, np.dtype[np.float32]]:
    """The logits of batch position ``index`` of the last decode, as a view (no copy).
    Raises EngineError when the last decode holds no logits there."""
    ptr = llama_cpp.llama_get_logits_ith(ctx, index)
    if not ptr:
        raise EngineError(f"the last decode has no logits at batch position {index}")
    return np.ctypeslib.as_array(ctypes.cast(ptr, ctypes.POINTER(ctypes.c_float)), shape=(n_vocab,))
