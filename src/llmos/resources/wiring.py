"""Building the resource manager from the frozen Config, and estimating a registered model.

No import of ``registry`` (a sibling): the kernel passes a Manifest's fields.

The kernel's composition root calls these two; everything else takes explicit collaborators.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from llmos.config import Config
from llmos.resources.budget import default_budget
from llmos.resources.estimate import RUNTIME_OVERHEAD_BYTES, EstimateParams, MemoryEstimate, estimate_gguf
from llmos.resources.inventory import Inventory
from llmos.resources.keepalive import parse_keep_alive
from llmos.resources.residency import Measurer, ResidencyManager, Retuner, T, Unloader


def residency_from_config(
    config: Config,
    inventory: Inventory,
    *,
    unload: Unloader[T],
    measure: Measurer[T] | None = None,
    retune: Retuner | None = None,
) -> ResidencyManager[T]:
    """A manager with the configured (or default) budget, keep-alive and the machine's cores.

    A fixed ``engine.n_threads`` replaces the physical cores as the pool shared between busy
    models. Raises InvalidRequest for a malformed ``keep_alive``.
    """
    cores = config.engine.n_threads or inventory.physical_cores
    return ResidencyManager(
        default_budget(inventory, config.memory_budget, config.memory_budget_share),
        unload=unload,
        cores=cores,
        default_keep_alive=parse_keep_alive(config.keep_alive),
        measure=measure,
        retune=retune,
    )


def estimate_model(
    model_path: Path,
    params: EstimateParams,
    *,
    format: str = "gguf",
    size: int = 0,
    metadata: Mapping[str, Any] | None = None,
) -> MemoryEstimate:
    """The estimate for a registered model (pass its Manifest's ``format``, ``size`` and
    ``metadata``): from its stored shape or GGUF header; for other formats
    (sentence-transformers) the files' size plus the runtime, a rough bound.

    Raises InvalidModelFile when a GGUF header cannot be read.
    """
    if format == "gguf":
        return estimate_gguf(model_path, params, metadata)
    return MemoryEstimate(
        weights=size, vocab=0, kv_cache=0, compute=0, runtime=RUNTIME_OVERHEAD_BYTES, device="cpu"
    )
