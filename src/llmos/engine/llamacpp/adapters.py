"""LoRA adapters on a loaded model's core: loaded once per file onto the base model
(``llama_adapter_lora_init``), applied to the context per decode (``llama_set_adapters_lora``).

llama.cpp applies adapters per context, not per sequence, so the engine decodes each adapter
set of a step on its own (see ``LlamaCppEngine.step``) and switches the context's set between
those decodes; switching makes llama.cpp re-reserve its compute graph at the next decode, so a
step begins with the set the context already has and switches once per other set in it.
Adapters are freed with the model (llama.cpp frees them in ``llama_model_free``).
"""

from __future__ import annotations

import ctypes
import math
from pathlib import Path
from typing import Any

import llama_cpp

from llmos.engine.base import AdapterSet
from llmos.errors import EngineError, InvalidRequest

MAX_ADAPTERS = 64
"""Distinct adapter files one core keeps loaded (each a few MiB for a small rank)."""


class Adapters:
    """The adapters loaded onto one model, and the set its context decodes with now."""

    def __init__(self, model: Any) -> None:
        self._model = model
        self._loaded: dict[str, Any] = {}
        self._active: AdapterSet = ()

    @property
    def loaded(self) -> list[str]:
        return list(self._loaded)

    @property
    def active(self) -> AdapterSet:
        """The set the context decodes with now."""
        return self._active

    def load(self, adapters: AdapterSet) -> None:
        """Load every adapter of ``adapters`` not loaded yet. Raises InvalidRequest for a scale
        that is not finite, a missing file, or a file llama.cpp refuses (not an adapter of this
        model's architecture and shapes)."""
        for a in adapters:
            if not math.isfinite(a.scale):
                raise InvalidRequest(f"adapter scale {a.scale} is not a finite number", param="model")
            if a.path in self._loaded:
                continue
            if len(self._loaded) >= MAX_ADAPTERS:
                raise InvalidRequest(
                    f"this model already serves {MAX_ADAPTERS} adapters; unload it to serve others",
                    param="model",
                )
            if not Path(a.path).is_file():
                raise InvalidRequest(f"adapter file {a.path} does not exist", param="model")
            ptr = llama_cpp.llama_adapter_lora_init(self._model, a.path.encode())
            if not ptr:
                raise InvalidRequest(
                    f"llama.cpp cannot load {a.path} as a LoRA adapter of this model "
                    "(another architecture or shape?)",
                    param="model",
                )
            self._loaded[a.path] = ptr

    def apply(self, ctx: Any, adapters: AdapterSet) -> None:
        """Make ``adapters`` the context's set for the next decodes (nothing if it already is)."""
        if adapters == self._active:
            return
        n = len(adapters)
        ptrs = (llama_cpp.llama_adapter_lora_p_ctypes * n)(*(self._loaded[a.path] for a in adapters))
        scales = (ctypes.c_float * n)(*(a.scale for a in adapters))
        rc = int(llama_cpp.llama_set_adapters_lora(ctx, ptrs if n else None, n, scales if n else None))
        if rc != 0:
            raise EngineError(f"llama_set_adapters_lora failed with code {rc}")
        self._active = adapters
