"""Serving fine-tuned adapters: a model whose manifest says ``adapter_of`` (a LoRA adapter GGUF
registered by a fine-tuning job) runs on its base model's engine core with the adapter applied
per sequence (``SequenceSpec.adapters``; the engine loads it onto the base with
``llama_adapter_lora_init`` and decodes each adapter set of a step on its own).

So one resident base serves itself and every adapter trained on it, side by side; the engine
keeps each adapter set's KV apart. A fine-tune made with ``merge`` is a full GGUF of its own
and is served like any model.
"""

from __future__ import annotations

from dataclasses import dataclass

from llmos.domain.manifest import Manifest
from llmos.engine.base import AdapterSet, LoraAdapter
from llmos.errors import ModelNotFound
from llmos.kernel.ports import Registry


@dataclass(frozen=True)
class Target:
    """What serves a model name: the model its core loads, under which residency key, and the
    adapters its sequences run with (none for a plain model)."""

    loaded: Manifest
    key: str
    adapters: AdapterSet = ()


def is_adapter(manifest: Manifest) -> bool:
    return "adapter_of" in manifest.metadata


def adapter_base(registry: Registry, manifest: Manifest) -> Manifest:
    """The base model an adapter was trained on. Blocking; raises ModelNotFound when it is gone."""
    digest = str(manifest.metadata["adapter_of"])
    family = manifest.name.partition(":")[0]
    try:
        return registry.resolve(f"{family}@sha256:{digest}")
    except ModelNotFound:
        raise ModelNotFound(
            f"the base model (sha256:{digest[:12]}) of adapter {manifest.name!r} is no longer registered",
            param="model",
        ) from None


def on_base(registry: Registry, manifest: Manifest) -> Target:
    """Adapter ``manifest`` served on its base: the base's residency key is its ``family:tag``
    while that name still points at the very base the adapter was trained on, else the base's
    pinned name (a newer version under the tag is another model). Blocking."""
    base = adapter_base(registry, manifest)
    try:
        current = registry.resolve(base.name)
    except ModelNotFound:
        current = None
    key = base.name if current is not None and current.digest == base.digest else base.pinned_name
    adapter = LoraAdapter(str(registry.model_path(manifest)), 1.0)
    return Target(loaded=base, key=key, adapters=(adapter,))
