"""The llama.cpp backend: continuous batching over llama-cpp-python's low-level API."""

from __future__ import annotations

from llmos.engine.llamacpp.engine import LlamaCppEngine

__all__ = ["LlamaCppEngine"]
