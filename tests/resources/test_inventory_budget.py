"""The machine's inventory and the memory budget derived from it."""

from __future__ import annotations

import shutil
from pathlib import Path

import psutil
import pytest

from llmos.resources import GpuInfo, Inventory, MemoryBudget, default_budget, take_inventory
from llmos.resources.budget import RAM_RESERVE
from llmos.resources.inventory import _cgroup_headroom, probe_gpus

GiB = 1024**3


def test_inventory_reports_sane_values() -> None:
    inv = take_inventory()
    assert 1 <= inv.physical_cores <= inv.logical_cores <= (psutil.cpu_count(logical=True) or 1)
    assert 0 < inv.ram_available_bytes <= inv.ram_total_bytes
    assert inv.ram_total_bytes == psutil.virtual_memory().total
    for gpu in inv.gpus:
        assert gpu.total_bytes >= gpu.free_bytes >= 0 and gpu.device == f"cuda:{gpu.index}"


def test_gpu_probe_without_a_driver_is_an_empty_list_not_an_error() -> None:
    gpus = probe_gpus()
    assert isinstance(gpus, tuple)
    assert take_inventory(gpu_probe=lambda: ()).gpus == ()


def test_inventory_takes_injected_probes() -> None:
    gpu = GpuInfo(index=0, name="Fake H100", total_bytes=80 * GiB, free_bytes=79 * GiB, used_bytes=1 * GiB)
    inv = take_inventory(
        cpu_probe=lambda: (8, 16), ram_probe=lambda: (64 * GiB, 60 * GiB), gpu_probe=lambda: (gpu,)
    )
    assert inv == Inventory(8, 16, 64 * GiB, 60 * GiB, (gpu,))
    assert inv.has_gpu


def test_cgroup_headroom(tmp_path: Path) -> None:
    mx, cur = tmp_path / "memory.max", tmp_path / "memory.current"
    assert _cgroup_headroom(mx, cur) is None
    mx.write_text("max\n")
    assert _cgroup_headroom(mx, cur) is None
    mx.write_text(str(4 * GiB))
    cur.write_text(str(1 * GiB))
    assert _cgroup_headroom(mx, cur) == 3 * GiB


def test_default_budget_is_a_safe_share_of_available_ram() -> None:
    gpu = GpuInfo(index=0, name="g", total_bytes=80 * GiB, free_bytes=40 * GiB, used_bytes=40 * GiB)
    big = Inventory(8, 16, 64 * GiB, 40 * GiB, (gpu,))
    budget = default_budget(big)
    assert budget.ram_bytes == 30 * GiB and not budget.configured
    assert budget.capacity("cuda:0") == int(40 * GiB * 0.9)
    assert budget.capacity("cuda:1") == 0
    small = Inventory(1, 1, 2 * GiB, 1 * GiB, ())
    assert default_budget(small).ram_bytes == 1 * GiB - RAM_RESERVE
    assert default_budget(Inventory(1, 1, 1, 100, ())).ram_bytes == 0


def test_configured_budget_wins() -> None:
    inv = Inventory(2, 2, 16 * GiB, 8 * GiB, ())
    assert default_budget(inv, 3 * GiB) == MemoryBudget(ram_bytes=3 * GiB, configured=True)
    # LLMOS_MEMORY_BUDGET=25%: a share of the machine's (or cgroup's) total RAM.
    assert default_budget(inv, share=0.25) == MemoryBudget(ram_bytes=4 * GiB, configured=True)


@pytest.mark.gpu
def test_gpus_are_listed_with_their_memory_on_a_gpu_machine() -> None:
    if shutil.which("nvidia-smi") is None:
        pytest.skip("no NVIDIA driver on this machine")
    pytest.importorskip("pynvml")
    gpus = probe_gpus()
    assert gpus, "nvidia-smi is present but NVML reported no GPU"
    for gpu in gpus:
        assert gpu.name and gpu.total_bytes > 0 and 0 <= gpu.free_bytes <= gpu.total_bytes
    budget = default_budget(take_inventory())
    assert budget.capacity("cuda:0") > 0
