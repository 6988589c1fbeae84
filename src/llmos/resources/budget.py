"""The memory budget: how many bytes resident models may hold in each memory pool.

Pools are ``cpu`` (host RAM) and ``cuda:<i>`` (one GPU's VRAM). The RAM budget is the
configured ``memory_budget`` when set (bytes, or a share of the machine's RAM:
``LLMOS_MEMORY_BUDGET=50%``), else a safe share of the RAM available at start:
``min(available × RAM_SHARE, available − RAM_RESERVE)``, leaving room for the server, the page
cache and other programs. Each GPU's budget is ``VRAM_SHARE`` of its free memory at start.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from llmos.resources.estimate import Device
from llmos.resources.inventory import Inventory

MiB = 1024 * 1024
RAM_SHARE = 0.75
RAM_RESERVE = 512 * MiB
VRAM_SHARE = 0.9


@dataclass(frozen=True)
class MemoryBudget:
    ram_bytes: int
    vram_bytes: Mapping[Device, int] = field(default_factory=dict)
    """Per GPU pool (``cuda:0`` ...)."""
    configured: bool = False
    """True when the RAM budget was set by the operator rather than derived from the inventory."""

    def capacity(self, device: Device) -> int:
        """Bytes models may hold in ``device``; 0 for a pool this machine lacks."""
        if device == "cpu":
            return self.ram_bytes
        return int(self.vram_bytes.get(device, 0))

    def pools(self) -> dict[Device, int]:
        return {"cpu": self.ram_bytes, **self.vram_bytes}


def default_budget(
    inventory: Inventory, memory_budget: int | None = None, share: float | None = None
) -> MemoryBudget:
    """The budget for this machine: ``memory_budget`` bytes of RAM if given, else ``share`` of
    its total RAM (as the inventory sees it: a cgroup limit included) if given, else a safe share."""
    vram = {gpu.device: int(gpu.free_bytes * VRAM_SHARE) for gpu in inventory.gpus}
    if memory_budget is not None:
        return MemoryBudget(ram_bytes=max(0, memory_budget), vram_bytes=vram, configured=True)
    if share is not None:
        ram = int(inventory.ram_total_bytes * min(1.0, max(0.0, share)))
        return MemoryBudget(ram_bytes=ram, vram_bytes=vram, configured=True)
    available = inventory.ram_available_bytes
    ram = max(0, min(int(available * RAM_SHARE), available - RAM_RESERVE))
    return MemoryBudget(ram_bytes=ram, vram_bytes=vram)
