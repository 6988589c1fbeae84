"""Fixtures for the structured-output tests: llama.cpp's grammar probe and the real small model.

``GrammarProbe`` drives llama.cpp's own grammar parser and sampler over a model's vocabulary only
(no weights): ``parses(gbnf)`` asks ``llama_sampler_init_grammar`` (NULL on a parse error);
``accepts(gbnf, text)`` feeds the tokens of ``text`` through the grammar sampler, checking at each
step that the sampler leaves the token possible, and that end-of-generation is allowed at the end.
"""

from __future__ import annotations

import ctypes
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import llama_cpp as lc
import pytest


class GrammarProbe:
    def __init__(self, model_path: Path) -> None:
        lc.llama_backend_init()
        params = lc.llama_model_default_params()
        params.vocab_only = True
        self._model = lc.llama_model_load_from_file(str(model_path).encode(), params)
        if not self._model:
            raise RuntimeError(f"cannot load vocabulary of {model_path}")
        self._vocab = lc.llama_model_get_vocab(self._model)
        self.eos = int(lc.llama_vocab_eos(self._vocab))

    def close(self) -> None:
        if self._model:
            lc.llama_model_free(self._model)
            self._model = None

    def _sampler(self, gbnf: str) -> ctypes.c_void_p | None:
        smpl = lc.llama_sampler_init_grammar(self._vocab, gbnf.encode(), b"root")
        return smpl or None

    def parses(self, gbnf: str) -> bool:
        smpl = self._sampler(gbnf)
        if smpl is None:
            return False
        lc.llama_sampler_free(smpl)
        return True

    def tokenize(self, text: str) -> list[int]:
        raw = text.encode()
        buf = (lc.llama_token * (len(raw) + 8))()
        n = lc.llama_tokenize(self._vocab, raw, len(raw), buf, len(buf), False, False)
        if n < 0:
            raise RuntimeError("tokenize failed")
        return list(buf[:n])

    def _allowed(self, smpl: ctypes.c_void_p, token: int) -> bool:
        data = (lc.llama_token_data * 1)()
        data[0].id = token
        data[0].logit = 0.0
        data[0].p = 0.0
        arr = lc.llama_token_data_array(data=data, size=1, selected=-1, sorted=False)
        lc.llama_sampler_apply(smpl, ctypes.byref(arr))
        return not math.isinf(data[0].logit)

    def accepts(self, gbnf: str, text: str) -> bool:
        """Whether the grammar generates exactly ``text`` (each token allowed, then end allowed)."""
        smpl = self._sampler(gbnf)
        if smpl is None:
            raise ValueError("grammar does not parse")
        try:
            for token in self.tokenize(text):
                if not self._allowed(smpl, token):
                    return False
                lc.llama_sampler_accept(smpl, token)
            return self._allowed(smpl, self.eos)
        finally:
            lc.llama_sampler_free(smpl)


@pytest.fixture(scope="session")
def probe(smollm2_gguf: Path) -> Iterator[GrammarProbe]:
    p = GrammarProbe(smollm2_gguf)
    yield p
    p.close()


@pytest.fixture(scope="session")
def smollm2(smollm2_gguf: Path) -> Iterator[Any]:
    llm = lc.Llama(model_path=str(smollm2_gguf), n_ctx=2048, verbose=False, n_threads=2)
    yield llm
    llm.close()
