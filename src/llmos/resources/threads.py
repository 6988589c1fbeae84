"""Dividing CPU threads between resident models.

Policy: llama.cpp runs fastest with one thread per *physical* core, and two models that each
use every core slow each other down far more than they gain. So the physical cores are split
between the models that are *busy* (running or queued requests), equally; cores that do not
divide evenly go to the busiest models first (then by name, so the result is deterministic).
Every busy model gets at least one thread (more busy models than cores oversubscribe, as little
as possible). An idle model keeps the share it would get if it became busy next to the current
busy ones, so waking it does not oversubscribe. A model is told its count when it loads;
the manager reports later changes through its ``retune`` callback.
"""

from __future__ import annotations

from collections.abc import Mapping


def threads_for(demand: Mapping[str, int], cores: int) -> dict[str, int]:
    """Threads per model. ``demand`` maps each resident model to its in-flight request count;
    ``cores`` is the number of physical cores to share (at least 1 is assumed)."""
    cores = max(1, cores)
    busy = sorted((k for k, n in demand.items() if n > 0), key=lambda k: (-demand[k], k))
    out: dict[str, int] = {}
    if busy:
        base, extra = divmod(cores, len(busy))
        for i, key in enumerate(busy):
            out[key] = max(1, base + (1 if i < extra else 0))
    idle_share = max(1, cores // (len(busy) + 1))
    for key in demand:
        if key not in out:
            out[key] = idle_share
    return out
