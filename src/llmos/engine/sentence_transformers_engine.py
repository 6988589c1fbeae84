"""``SentenceTransformersEngine``: the backend of sentence-transformers models (``minilm:l6``).

A model folder (``modules.json``, ``config.json``, weights, tokenizer) that the registry
materialized runs on one of two engines, chosen at load:

- **llama.cpp**, for the BERT encoders llama.cpp implements (all-MiniLM-L6-v2 among them): the
  folder is converted once to a GGUF file (:mod:`llmos.engine.llamacpp.st_convert`, kept in
  ``LoadSpec.derived_dir`` like the engine's other derived weights) and embedded in llama.cpp's
  embedding mode. No torch needed: retrieval works on the default install. Inputs are bounded
  by the model's ``max_seq_length``, as sentence-transformers bounds them.
- **sentence-transformers on torch** (:mod:`llmos.engine.st_torch`, the ``[ml]`` extra) for
  every other model; without the extra, such a load raises MissingDependency saying what to
  install.

Either way the engine only embeds: the generation half of the protocol refuses.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Sequence
from dataclasses import replace
from typing import Protocol

from llmos.engine.base import EngineHealth, EngineInfo, LoadSpec
from llmos.engine.embedding_only import EmbeddingOnly
from llmos.errors import EngineError
from llmos.types import TokenId

logger = logging.getLogger(__name__)


class _Embedder(Protocol):
    def load(self, spec: LoadSpec) -> EngineInfo: ...
    def unload(self) -> None: ...
    def tokenize(
        self, text: str, *, add_special: bool = True, parse_special: bool = True
    ) -> list[TokenId]: ...
    def detokenize(self, tokens: Sequence[TokenId]) -> str: ...
    def embed(
        self, inputs: Sequence[str | Sequence[TokenId]], *, normalize: bool = True
    ) -> list[list[float]]: ...
    def health(self) -> EngineHealth: ...


def _max_seq_length(spec: LoadSpec) -> int | None:
    try:
        config = json.loads((spec.model_path / "sentence_bert_config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    value = config.get("max_seq_length") if isinstance(config, dict) else None
    return int(value) if isinstance(value, int) and value > 0 else None


class SentenceTransformersEngine(EmbeddingOnly):
    """The sentence-transformers backend of :class:`llmos.engine.base.Engine`. Not thread-safe."""

    def __init__(self) -> None:
        self._impl: _Embedder | None = None
        self._info: EngineInfo | None = None

    def load(self, spec: LoadSpec) -> EngineInfo:
        if self._impl is not None:
            raise EngineError("a model is already loaded; unload it first")
        from llmos.engine.llamacpp.st_convert import inspect_folder

        found = inspect_folder(spec.model_path)
        if isinstance(found, str):
            logger.info(
                "%s runs on sentence-transformers (torch): llama.cpp cannot, %s", spec.model_path, found
            )
            from llmos.engine.st_torch import TorchSentenceEngine

            torch_engine = TorchSentenceEngine()
            self._info = torch_engine.load(spec)
            self._impl = torch_engine
            return self._info
        self._info = self._load_on_llamacpp(spec)
        return self._info

    def _load_on_llamacpp(self, spec: LoadSpec) -> EngineInfo:
        from llmos.engine.llamacpp import LlamaCppEngine
        from llmos.engine.llamacpp.requantize import default_derived_dir
        from llmos.engine.llamacpp.st_convert import CONVERSION, convert

        gguf = (spec.derived_dir or default_derived_dir()) / f"{spec.model_path.name}.{CONVERSION}"
        if not gguf.is_file():
            convert(spec.model_path, gguf)
        limit = _max_seq_length(spec)
        n_batch = min(spec.n_batch, limit) if limit else spec.n_batch
        engine = LlamaCppEngine()
        try:
            info = engine.load(replace(spec, model_path=gguf, format="gguf", embedding=True, n_batch=n_batch))
        except Exception:
            # A cached conversion llama.cpp cannot load is made again next time.
            gguf.unlink(missing_ok=True)
            raise
        self._impl = engine
        return replace(
            info,
            model_path=str(spec.model_path),
            n_ctx=min(info.n_ctx, n_batch),
            chat_template=None,
            weights=f"f32 GGUF (converted from sentence-transformers: {gguf.name})",
        )

    @property
    def info(self) -> EngineInfo:
        if self._info is None:
            raise EngineError("no model loaded")
        return self._info

    def _embedder(self) -> _Embedder:
        if self._impl is None:
            raise EngineError("no model loaded")
        return self._impl

    def unload(self) -> None:
        if self._impl is not None:
            self._impl.unload()
        self._impl = None
        self._info = None

    def tokenize(self, text: str, *, add_special: bool = True, parse_special: bool = True) -> list[TokenId]:
        return self._embedder().tokenize(text, add_special=add_special, parse_special=parse_special)

    def detokenize(self, tokens: Sequence[TokenId]) -> str:
        return self._embedder().detokenize(tokens)

    def embed(
        self, inputs: Sequence[str | Sequence[TokenId]], *, normalize: bool = True
    ) -> list[list[float]]:
        """One vector per input, in order. A string is tokenized with the model's special tokens
        ([CLS] ... [SEP]); a token list is used as it is. Raises InvalidRequest for an empty
        input, an unknown token id or an input longer than the model's ``max_seq_length``."""
        return self._embedder().embed(inputs, normalize=normalize)

    def health(self) -> EngineHealth:
        if self._impl is None:
            return EngineHealth(ok=False, detail="no model loaded", pid=os.getpid())
        return self._impl.health()


def available() -> bool:
    """Whether the ``[ml]`` extra (torch, sentence-transformers) is installed: only models that
    llama.cpp cannot run need it."""
    from llmos.engine.st_torch import available as torch_available

    return torch_available()
