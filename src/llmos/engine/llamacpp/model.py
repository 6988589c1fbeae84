"""One GGUF model and its llama.cpp context: load/unload, tokenizer, metadata.

Everything here is a thin typed layer over llama-cpp-python's low-level API; the engine
(``engine.py``) owns the scheduling logic and never calls ctypes functions for these jobs itself.
"""

from __future__ import annotations

import ctypes
import logging
import os
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import llama_cpp

from llmos.engine.base import LoadSpec
from llmos.engine.llamacpp.requantize import WeightsChoice, choose_weights
from llmos.errors import EngineError, InvalidModelFile, InvalidRequest
from llmos.types import TokenId

logger = logging.getLogger(__name__)

_backend_lock = threading.Lock()
_backend_ready = False


def _init_backend() -> None:
    global _backend_ready
    with _backend_lock:
        if _backend_ready:
            return
        # llama-cpp-python prints every llama.cpp log line unless its logger is raised.
        lib_logger = logging.getLogger("llama-cpp-python")
        if lib_logger.level == logging.NOTSET:
            lib_logger.setLevel(logging.ERROR)
        llama_cpp.llama_backend_init()
        _backend_ready = True


def physical_cores() -> int:
    """A reasonable default thread count: the CPUs this process may run on."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


@dataclass(frozen=True)
class ContextShape:
    n_ctx: int
    """KV cells of the whole context."""
    n_batch: int
    n_seq_max: int
    embedding: bool
    kv_unified: bool = True
    """One KV buffer shared by every sequence (each may use all ``n_ctx`` cells), or, when false,
    one stream of ``n_ctx_seq`` cells per sequence id."""
    n_ctx_seq: int = 0
    """The most cells one sequence can hold: ``n_ctx`` when unified, ``n_ctx / n_seq_max`` otherwise."""


def kv_unified_option(spec: LoadSpec) -> bool:
    """``LoadSpec.extra["kv_unified"]`` (default false); embedding contexts are always unified.

    Per-sequence streams (false, the default) give each slot ``n_ctx / n_slots`` cells of its own,
    and each sequence attends over its own cells only: a batched decode of 16 sequences costs
    about 16 % less CPU than over one unified buffer, where every token's attention spans the
    cells of all sequences (measured with ``bench/kv_config_probe.py``). A unified buffer (true)
    lets one sequence use all ``n_ctx`` cells.
    """
    raw = spec.extra.get("kv_unified", False)
    if isinstance(raw, str):
        if raw.strip().lower() not in ("1", "0", "true", "false", "yes", "no", "on", "off"):
            raise InvalidRequest("kv_unified must be true or false", param="kv_unified")
        raw = raw.strip().lower() in ("1", "true", "yes", "on")
    return bool(raw) or spec.embedding


class LlamaModel:
    """A loaded model plus one context sized for ``n_seq_max`` sequences sharing ``n_ctx`` cells.

    Raises InvalidModelFile when the file is missing or llama.cpp cannot read it, and
    EngineError when the context cannot be created.
    """

    def __init__(self, spec: LoadSpec, *, n_seq_max: int) -> None:
        path = Path(spec.model_path)
        if not path.is_file():
            raise InvalidModelFile(f"model file not found: {path}", param="model_path")
        if spec.n_slots < 1 or spec.n_ctx < 16 or spec.n_batch < 1:
            raise InvalidRequest("n_slots, n_ctx and n_batch must be positive (n_ctx >= 16)")
        _init_backend()
        mparams = llama_cpp.llama_model_default_params()
        mparams.n_gpu_layers = int(spec.extra.get("n_gpu_layers", 0))
        self.weights = choose_weights(
            path, spec.cpu_weights, gpu_layers=mparams.n_gpu_layers, derived_dir=spec.derived_dir
        )
        model = llama_cpp.llama_model_load_from_file(str(self.weights.path).encode(), mparams)
        if not model and self.weights.path != path:
            logger.warning("cannot load the converted %s; deleting it, loading %s", self.weights.path, path)
            self.weights.path.unlink(missing_ok=True)
            self.weights = WeightsChoice(path=path, file_type=self.weights.file_type)
            model = llama_cpp.llama_model_load_from_file(str(path).encode(), mparams)
        if not model:
            raise InvalidModelFile(f"llama.cpp could not load {path.name} (not a valid GGUF model?)")
        self._model: Any = model
        self._ctx: Any = None
        try:
            self._vocab: Any = llama_cpp.llama_model_get_vocab(model)
            self.n_vocab = int(llama_cpp.llama_vocab_n_tokens(self._vocab))
            self.n_ctx_train = int(llama_cpp.llama_model_n_ctx_train(model))
            self.n_embd = int(llama_cpp.llama_model_n_embd(model))
            threads = spec.n_threads or physical_cores()
            self._ctx = self._new_context(spec, n_seq_max, threads, pooling=self._pooling(spec))
            if (
                spec.embedding
                and llama_cpp.llama_pooling_type(self._ctx) == llama_cpp.LLAMA_POOLING_TYPE_NONE
            ):
                # A generative model asked for embeddings: mean-pool its last hidden states.
                llama_cpp.llama_free(self._ctx)
                self._ctx = self._new_context(
                    spec, n_seq_max, threads, pooling=llama_cpp.LLAMA_POOLING_TYPE_MEAN
                )
            unified = kv_unified_option(spec)
            # llama.cpp may round a stream up (to 256 cells); a slot still gets only its share.
            share = spec.n_ctx if unified else spec.n_ctx // n_seq_max
            self.shape = ContextShape(
                n_ctx=min(spec.n_ctx, int(llama_cpp.llama_n_ctx(self._ctx))),
                n_batch=spec.n_batch,
                n_seq_max=n_seq_max,
                embedding=spec.embedding,
                kv_unified=unified,
                n_ctx_seq=min(share, int(llama_cpp.llama_n_ctx_seq(self._ctx))),
            )
            self.memory: Any = llama_cpp.llama_get_memory(self._ctx)
        except BaseException:
            self.close()
            raise
        self.path = path
        self._piece_buf = ctypes.create_string_buffer(256)
        self._piece_cache: dict[tuple[TokenId, bool], bytes] = {}

    @staticmethod
    def _pooling(spec: LoadSpec) -> int:
        names = {"mean": 1, "cls": 2, "last": 3, "none": 0}
        raw = spec.extra.get("pooling")
        if raw is None:
            return int(llama_cpp.LLAMA_POOLING_TYPE_UNSPECIFIED)
        if str(raw) not in names:
            raise InvalidRequest(f"unknown pooling {raw!r}; use one of {sorted(names)}", param="pooling")
        return names[str(raw)]

    def _new_context(self, spec: LoadSpec, n_seq_max: int, threads: int, *, pooling: int) -> Any:
        cparams = llama_cpp.llama_context_default_params()
        cparams.n_ctx = spec.n_ctx
        cparams.n_batch = spec.n_batch
        cparams.n_ubatch = spec.n_batch
        cparams.n_seq_max = n_seq_max
        cparams.n_threads = threads
        cparams.n_threads_batch = threads
        cparams.embeddings = spec.embedding
        cparams.pooling_type = pooling
        cparams.no_perf = True
        flash = spec.extra.get("flash_attn", "auto")
        flash_types = {"auto": -1, "off": 0, "on": 1}
        if flash not in flash_types:
            raise InvalidRequest("flash_attn must be auto, on or off", param="flash_attn")
        cparams.flash_attn_type = flash_types[str(flash)]
        cparams.kv_unified = kv_unified_option(spec)
        ctx = llama_cpp.llama_init_from_model(self._model, cparams)
        if not ctx:
            raise EngineError(
                f"llama.cpp could not create a context (n_ctx={spec.n_ctx}, n_seq_max={n_seq_max})"
            )
        return ctx

    @property
    def ctx(self) -> Any:
        return self._ctx

    @property
    def handle(self) -> Any:
        """The ``llama_model`` pointer (what adapters load onto)."""
        return self._model

    @property
    def vocab(self) -> Any:
        return self._vocab

    # --- tokenizer -------------------------------------------------------------------------

    def tokenize(self, text: str, *, add_special: bool, parse_special: bool) -> list[TokenId]:
        data = text.encode("utf-8")
        cap = len(data) + 8
        buf = (llama_cpp.llama_token * cap)()
        n = llama_cpp.llama_tokenize(self._vocab, data, len(data), buf, cap, add_special, parse_special)
        if n < 0:
            cap = -n
            buf = (llama_cpp.llama_token * cap)()
            n = llama_cpp.llama_tokenize(self._vocab, data, len(data), buf, cap, add_special, parse_special)
            if n < 0:
                raise EngineError("tokenization failed")
        return list(buf[:n])

    def piece(self, token: TokenId, *, special: bool = False) -> bytes:
        """The bytes of one token (may be a fragment of a multi-byte UTF-8 character)."""
        key = (token, special)
        cached = self._piece_cache.get(key)
        if cached is not None:
            return cached
        if not 0 <= token < self.n_vocab:
            raise InvalidRequest(f"token id {token} out of range [0, {self.n_vocab})", param="tokens")
        n = llama_cpp.llama_token_to_piece(
            self._vocab, token, self._piece_buf, len(self._piece_buf), 0, special
        )
        if n < 0:
            big = ctypes.create_string_buffer(-n)
            n = llama_cpp.llama_token_to_piece(self._vocab, token, big, -n, 0, special)
            out = big.raw[:n]
        else:
            out = self._piece_buf.raw[:n]
        self._piece_cache[key] = out
        return out

    def detokenize(self, tokens: Sequence[TokenId], *, special: bool = False) -> str:
        return b"".join(self.piece(t, special=special) for t in tokens).decode("utf-8", errors="replace")

    def has_control_token(self, text: str) -> bool:
        """Whether ``text`` (e.g. ``<start_of_turn>``) is a single token of this vocabulary."""
        return len(self.tokenize(text, add_special=False, parse_special=True)) == 1

    def is_eog(self, token: TokenId) -> bool:
        return bool(llama_cpp.llama_vocab_is_eog(self._vocab, token))

    def eos_token_ids(self) -> tuple[TokenId, ...]:
        ids = {int(llama_cpp.llama_vocab_eos(self._vocab)), int(llama_cpp.llama_vocab_eot(self._vocab))}
        return tuple(sorted(i for i in ids if i >= 0))

    def token_text(self, token: TokenId) -> str:
        if token < 0:
            return ""
        return self.piece(token, special=True).decode("utf-8", errors="replace")

    def meta(self, key: str) -> str | None:
        buf = ctypes.create_string_buffer(1 << 16)
        n = llama_cpp.llama_model_meta_val_str(self._model, key.encode(), buf, len(buf))
        if n < 0:
            return None
        if n >= len(buf):
            buf = ctypes.create_string_buffer(n + 1)
            llama_cpp.llama_model_meta_val_str(self._model, key.encode(), buf, len(buf))
        return buf.value.decode("utf-8", errors="replace")

    def chat_template(self) -> str | None:
        raw = llama_cpp.llama_model_chat_template(self._model, None)
        if raw:
            return bytes(raw).decode("utf-8", errors="replace")
        return self.meta("tokenizer.chat_template")

    def close(self) -> None:
        if self._ctx is not None:
            llama_cpp.llama_free(self._ctx)
            self._ctx = None
        if self._model is not None:
            llama_cpp.llama_model_free(self._model)
            self._model = None
