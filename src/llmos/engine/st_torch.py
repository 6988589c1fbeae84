"""``TorchSentenceEngine``: sentence embeddings with sentence-transformers on torch (CPU).

The engine of the sentence-transformers models llama.cpp cannot run (see
:mod:`llmos.engine.sentence_transformers_engine`, which picks). It loads a model folder (``modules.json``, ``config.json``, weights,
tokenizer) that the registry materialized, never touching the network, and answers ``embed``,
``tokenize``, ``detokenize``, ``health`` and ``unload``. It cannot generate text: the generation
half of the engine protocol raises InvalidRequest.

torch and sentence-transformers come with the optional ``[ml]`` extra and are imported only
when a model loads; without them ``load`` raises MissingDependency telling the user what to
install, and the rest of llmos works as before.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from typing import Any

from llmos.engine.base import EngineHealth, EngineInfo, LoadSpec, check_embedding_input
from llmos.engine.embedding_only import EmbeddingOnly
from llmos.errors import EngineError, InvalidModelFile, MissingDependency
from llmos.types import TokenId

logger = logging.getLogger(__name__)

BACKEND = "sentence_transformers"
BATCH_SIZE = 32
"""Inputs run through the transformer together (sorted by length, so padding stays small)."""
INSTALL_HINT = "pip install 'llmos[ml]'"


def _import_ml() -> tuple[Any, Any]:
    """torch and sentence_transformers, or MissingDependency naming the extra to install."""
    try:
        import sentence_transformers
        import torch
    except ImportError as exc:
        raise MissingDependency(
            f"sentence-transformers models need torch and sentence-transformers ({exc.name} is not "
            f"installed); install them with: {INSTALL_HINT}",
            param="model",
        ) from exc
    return torch, sentence_transformers


def _quiet_progress_bars() -> None:
    """Library code prints no progress bars (a worker's stderr is the server's log)."""
    try:
        from transformers.utils import logging as hf_logging

        disable: Any = hf_logging.disable_progress_bar
        disable()
    except (ImportError, AttributeError):
        logger.debug("could not turn off transformers' progress bars", exc_info=True)


def available() -> bool:
    """Whether the ``[ml]`` extra is installed (without importing it)."""
    import importlib.util

    return all(importlib.util.find_spec(m) is not None for m in ("torch", "sentence_transformers"))


class TorchSentenceEngine(EmbeddingOnly):
    """Sentence embeddings on torch, the protocol of :class:`llmos.engine.base.Engine`. Not thread-safe."""

    def __init__(self) -> None:
        self._torch: Any = None
        self._model: Any = None
        self._tokenizer: Any = None
        self._info: EngineInfo | None = None

    # --- lifecycle ---------------------------------------------------------------------------

    def load(self, spec: LoadSpec) -> EngineInfo:
        if self._model is not None:
            raise EngineError("a model is already loaded; unload it first")
        if not spec.model_path.is_dir() or not (spec.model_path / "modules.json").is_file():
            raise InvalidModelFile(
                f"{spec.model_path} is not a sentence-transformers model folder (no modules.json)",
                param="model_path",
            )
        torch, st = _import_ml()
        _quiet_progress_bars()
        torch.set_num_threads(max(1, spec.n_threads or _cores()))
        try:
            # A local folder and local_files_only: the hub client never reaches the network.
            model = st.SentenceTransformer(str(spec.model_path), device="cpu", local_files_only=True)
        except Exception as exc:  # a broken folder surfaces as whatever transformers raises
            raise InvalidModelFile(f"sentence-transformers could not load the model: {exc}") from exc
        model.eval()
        tokenizer = model.tokenizer
        max_len = int(model.max_seq_length or getattr(tokenizer, "model_max_length", 512))
        dimension = getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension
        dim = int(dimension() or 0)
        config = getattr(model[0], "auto_model", None)
        n_pos = int(getattr(getattr(config, "config", None), "max_position_embeddings", 0) or max_len)
        self._torch, self._model, self._tokenizer = torch, model, tokenizer
        self._info = EngineInfo(
            model_path=str(spec.model_path),
            n_ctx=max_len,
            n_slots=spec.n_slots,
            n_batch=spec.n_batch,
            n_vocab=len(tokenizer),
            n_ctx_train=n_pos,
            eos_token_ids=(),
            bos_token=str(tokenizer.cls_token or ""),
            eos_token=str(tokenizer.sep_token or ""),
            chat_template=None,
            embedding_dim=dim,
            backend=BACKEND,
        )
        logger.info("loaded %s (dim=%d, max %d tokens)", spec.model_path, dim, max_len)
        return self._info

    @property
    def info(self) -> EngineInfo:
        if self._info is None:
            raise EngineError("no model loaded")
        return self._info

    def unload(self) -> None:
        self._model = self._tokenizer = None
        self._info = None

    # --- tokenizer -----------------------------------------------------------------------------

    def _tok(self) -> Any:
        if self._tokenizer is None:
            raise EngineError("no model loaded")
        return self._tokenizer

    def tokenize(self, text: str, *, add_special: bool = True, parse_special: bool = True) -> list[TokenId]:
        ids = self._tok()(text, add_special_tokens=add_special, truncation=False, verbose=False)["input_ids"]
        return [int(t) for t in ids]

    def detokenize(self, tokens: Sequence[TokenId]) -> str:
        return str(self._tok().decode(list(tokens), skip_special_tokens=True))

    # --- embeddings ----------------------------------------------------------------------------

    def embed(
        self, inputs: Sequence[str | Sequence[TokenId]], *, normalize: bool = True
    ) -> list[list[float]]:
        """One vector per input, in order. A string is tokenized with the model's special tokens
        ([CLS] ... [SEP]); a token list is used as it is. Raises InvalidRequest for an empty
        input, an unknown token id or an input longer than the model's ``max_seq_length``."""
        info = self.info
        token_lists = [self.tokenize(x) if isinstance(x, str) else [int(t) for t in x] for x in inputs]
        for toks in token_lists:
            check_embedding_input(toks, info.n_ctx, info.n_vocab)
        order = sorted(range(len(token_lists)), key=lambda i: len(token_lists[i]))
        out: list[list[float]] = [[] for _ in token_lists]
        for start in range(0, len(order), BATCH_SIZE):
            chunk = order[start : start + BATCH_SIZE]
            vectors = self._forward([token_lists[i] for i in chunk], normalize)
            for i, vec in zip(chunk, vectors, strict=True):
                out[i] = vec
        return out

    def _forward(self, batch: list[list[TokenId]], normalize: bool) -> list[list[float]]:
        torch = self._torch
        pad = int(self._tok().pad_token_id or 0)
        width = max(len(t) for t in batch)
        ids = torch.full((len(batch), width), pad, dtype=torch.long)
        mask = torch.zeros((len(batch), width), dtype=torch.long)
        for row, toks in enumerate(batch):
            ids[row, : len(toks)] = torch.tensor(toks, dtype=torch.long)
            mask[row, : len(toks)] = 1
        features = {"input_ids": ids, "attention_mask": mask}
        if "token_type_ids" in getattr(self._tok(), "model_input_names", ()):
            features["token_type_ids"] = torch.zeros_like(ids)
        with torch.inference_mode():
            emb = self._model(features)["sentence_embedding"].to(torch.float64)
            if normalize:
                emb = torch.nn.functional.normalize(emb, p=2.0, dim=1)
        return [[float(v) for v in row] for row in emb.tolist()]

    def health(self) -> EngineHealth:
        if self._info is None:
            return EngineHealth(ok=False, detail="no model loaded", pid=os.getpid(), rss_bytes=_rss())
        return EngineHealth(ok=True, slots_total=self._info.n_slots, rss_bytes=_rss(), pid=os.getpid())


def _cores() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def _rss() -> int:
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0
