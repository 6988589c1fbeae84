"""Serving fine-tuned adapters: a model whose manifest says ``adapter_of`` (a LoRA adapter GGUF
registered by a fine-tuning job) is served from its base merged with the adapter.

The merge (:func:`llmos.training.merge.merge_adapter`) runs once per adapter, off the event loop,
into the derived-weights folder (``sha256-<adapter digest>.merged.gguf``, atomically renamed into
place); later loads map that file. The model then has an engine core of its own, so its KV cache
and prefix reuse never mix with the base's or another adapter's.
"""

from __future__ import annotations

from pathlib import Path

from llmos.domain.manifest import Manifest
from llmos.errors import ModelNotFound
from llmos.kernel.ports import Registry
from llmos.registry.names import parse_name


def is_adapter(manifest: Manifest) -> bool:
    return "adapter_of" in manifest.metadata


def adapter_base(registry: Registry, manifest: Manifest) -> Manifest:
    """The base model an adapter was trained on. Raises ModelNotFound when it is gone."""
    digest = str(manifest.metadata["adapter_of"])
    lineage = manifest.metadata.get("lineage") or {}
    base_name = (
        str(lineage.get("base_model") or manifest.name) if isinstance(lineage, dict) else manifest.name
    )
    try:
        return registry.resolve(f"{parse_name(base_name).family}@sha256:{digest}")
    except ModelNotFound:
        raise ModelNotFound(
            f"the base model (sha256:{digest[:12]}) of adapter {manifest.name!r} is no longer registered",
            param="model",
        ) from None


def merged_weights(registry: Registry, manifest: Manifest, derived: Path) -> Path:
    """The merged GGUF of adapter ``manifest`` on its base, made on first use. Blocking."""
    from llmos.training.merge import merge_adapter

    dest = derived / f"sha256-{manifest.digest}.merged.gguf"
    if dest.is_file():
        return dest
    base = adapter_base(registry, manifest)
    return merge_adapter(registry.model_path(base), registry.model_path(manifest), dest)
