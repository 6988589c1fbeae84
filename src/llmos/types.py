"""Small shared aliases and value types that every layer may import."""

from __future__ import annotations

from typing import Any, Literal, TypeAlias

JSON: TypeAlias = dict[str, Any]
Digest: TypeAlias = str
"""A lowercase hex sha256 digest, 64 characters, without the ``sha256:`` prefix."""

TokenId: TypeAlias = int
SeqId: TypeAlias = str
TenantId: TypeAlias = str

ModelFormat: TypeAlias = Literal["gguf", "sentence-transformers"]
FinishReason: TypeAlias = Literal["stop", "length", "abort", "error", "tool_calls", "timeout"]
ChatMessage: TypeAlias = dict[str, Any]
"""An OpenAI-shaped chat message: ``{"role": ..., "content": ...}`` plus optional tool fields."""
