"""What the machine has: CPU cores, RAM, GPUs and their memory.

:func:`take_inventory` returns a frozen :class:`Inventory` snapshot. GPUs are found through
NVML (``nvidia-ml-py``, the ``gpu`` extra); without the package, the driver or a GPU the list
is empty, never an error. Collaborators (the memory and GPU probes) are injectable so tests
and other platforms can swap them.
"""

from __future__ import annotations

import importlib
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

log = logging.getLogger(__name__)

CGROUP_MEMORY_MAX = Path("/sys/fs/cgroup/memory.max")
CGROUP_MEMORY_CURRENT = Path("/sys/fs/cgroup/memory.current")


@dataclass(frozen=True)
class GpuInfo:
    index: int
    name: str
    total_bytes: int
    free_bytes: int
    used_bytes: int

    @property
    def device(self) -> str:
        """The memory pool name used by estimates and budgets: ``cuda:<index>``."""
        return f"cuda:{self.index}"


@dataclass(frozen=True)
class Inventory:
    physical_cores: int
    """Physical cores this process may use (the thread pool size llama.cpp is fastest with)."""
    logical_cores: int
    """Hardware threads this process may use (its CPU affinity)."""
    ram_total_bytes: int
    ram_available_bytes: int
    """Available to new processes now; lowered to the cgroup limit's headroom inside a container."""
    gpus: tuple[GpuInfo, ...] = ()

    @property
    def has_gpu(self) -> bool:
        return bool(self.gpus)


def _cgroup_headroom(
    max_path: Path = CGROUP_MEMORY_MAX, current_path: Path = CGROUP_MEMORY_CURRENT
) -> int | None:
    """Bytes left under a cgroup v2 memory limit, or None when there is no limit."""
    try:
        raw = max_path.read_text().strip()
        if raw == "max":
            return None
        limit = int(raw)
        current = int(current_path.read_text().strip())
    except (OSError, ValueError):
        return None
    return max(0, limit - current)


def _usable_logical_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return psutil.cpu_count(logical=True) or 1


def probe_cpu() -> tuple[int, int]:
    """(physical, logical) cores usable by this process; physical never exceeds logical."""
    logical = max(1, _usable_logical_cores())
    machine_logical = psutil.cpu_count(logical=True) or logical
    machine_physical = psutil.cpu_count(logical=False) or machine_logical
    # SMT ratio of the machine applied to the cores we may use (affinity, containers).
    physical = max(1, round(logical * machine_physical / machine_logical))
    return min(physical, logical), logical


def probe_ram() -> tuple[int, int]:
    """(total, available) bytes of RAM, capped by a cgroup v2 limit where one applies."""
    vm = psutil.virtual_memory()
    total, available = int(vm.total), int(vm.available)
    headroom = _cgroup_headroom()
    if headroom is not None:
        available = min(available, headroom)
    return total, available


def _nvml() -> Any | None:
    try:
        return importlib.import_module("pynvml")
    except ImportError:
        return None


def probe_gpus() -> tuple[GpuInfo, ...]:
    """NVIDIA GPUs and their memory through NVML; empty without nvidia-ml-py, driver or GPU."""
    nvml = _nvml()
    if nvml is None:
        return ()
    try:
        nvml.nvmlInit()
    except Exception as exc:  # NVMLError_LibraryNotFound, _DriverNotLoaded, ...: no usable GPU
        log.debug("no NVML: %s", exc)
        return ()
    gpus: list[GpuInfo] = []
    try:
        for index in range(int(nvml.nvmlDeviceGetCount())):
            handle = nvml.nvmlDeviceGetHandleByIndex(index)
            name = nvml.nvmlDeviceGetName(handle)
            mem = nvml.nvmlDeviceGetMemoryInfo(handle)
            gpus.append(
                GpuInfo(
                    index=index,
                    name=name.decode() if isinstance(name, bytes) else str(name),
                    total_bytes=int(mem.total),
                    free_bytes=int(mem.free),
                    used_bytes=int(mem.used),
                )
            )
    except Exception as exc:
        log.warning("NVML query failed, reporting no GPUs: %s", exc)
        return ()
    finally:
        try:
            nvml.nvmlShutdown()
        except Exception as exc:
            log.debug("nvmlShutdown: %s", exc)
    return tuple(gpus)


def take_inventory(
    *,
    cpu_probe: Callable[[], tuple[int, int]] = probe_cpu,
    ram_probe: Callable[[], tuple[int, int]] = probe_ram,
    gpu_probe: Callable[[], tuple[GpuInfo, ...]] = probe_gpus,
) -> Inventory:
    """A snapshot of the machine's resources now."""
    physical, logical = cpu_probe()
    total, available = ram_probe()
    return Inventory(
        physical_cores=physical,
        logical_cores=logical,
        ram_total_bytes=total,
        ram_available_bytes=available,
        gpus=gpu_probe(),
    )
