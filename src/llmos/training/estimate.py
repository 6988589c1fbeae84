"""How much RAM and how many threads a fine-tuning job needs (what the resource manager charges)."""

from __future__ import annotations

from llmos.domain.manifest import Manifest
from llmos.domain.training import Hyperparameters

RUNTIME_BYTES = 900 << 20
"""torch + transformers + peft in a fresh interpreter, before any weights."""


def training_bytes(manifest: Manifest, hp: Hyperparameters) -> int:
    """RAM one job holds at its peak: the dequantized float32 base, the LoRA weights with their
    gradients and AdamW moments, activations kept for the backward pass and the logits of a batch
    (with their gradient), plus the runtime."""
    meta = manifest.metadata
    params = manifest.parameter_count or manifest.size * 2
    hidden = manifest.embedding_length or 1024
    layers = int(meta.get("block_count") or 24)
    vocab = int(meta.get("vocab_size") or 32000)
    tokens = hp.batch_size * hp.max_seq_len
    weights = params * 4
    lora = 2 * hp.lora_rank * hidden * len(hp.target_modules) * layers * 4 * 4
    activations = tokens * hidden * layers * 4 * 16
    logits = tokens * vocab * 4 * 3
    return int(weights + lora + activations + logits + RUNTIME_BYTES)


def training_threads(configured: int, cores: int) -> int:
    """``configured``, or half the cores (at least one) when 0."""
    if configured > 0:
        return min(configured, max(1, cores))
    return max(1, cores // 2)
