"""Engine backends by name: what an engine core runs (``llamacpp``, ``fake``, ``sentence_transformers``)."""

from __future__ import annotations

import importlib
from collections.abc import Callable

from llmos.engine.base import Engine
from llmos.errors import InvalidRequest

BACKENDS: dict[str, str] = {
    "llamacpp": "llmos.engine.llamacpp:LlamaCppEngine",
    "fake": "llmos.engine.fake:FakeEngine",
    "sentence_transformers": "llmos.engine.sentence_transformers_engine:SentenceTransformersEngine",
}
"""Backend name → ``module:Class`` of an :class:`Engine` with a no-argument constructor."""


def check_backend(backend: str) -> None:
    """Raises InvalidRequest for a backend name llmos does not know."""
    if backend not in BACKENDS:
        raise InvalidRequest(
            f"unknown engine backend {backend!r}; known: {sorted(BACKENDS)}", param="backend"
        )


def make_engine(backend: str) -> Engine:
    """A new, unloaded engine of ``backend``; raises InvalidRequest for an unknown one."""
    check_backend(backend)
    module_name, _, class_name = BACKENDS[backend].partition(":")
    factory: Callable[[], Engine] = getattr(importlib.import_module(module_name), class_name)
    return factory()
