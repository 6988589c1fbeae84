"""Building the manager from Config, and estimating a registered model."""

from __future__ import annotations

from pathlib import Path

import pytest

from llmos.config import Config, EngineConfig, Paths
from llmos.domain.manifest import Manifest, ManifestFile
from llmos.errors import InvalidRequest
from llmos.resources import EstimateParams, Inventory, estimate_memory, read_shape
from llmos.resources.estimate import RUNTIME_OVERHEAD_BYTES
from llmos.resources.wiring import estimate_model, residency_from_config

from .test_estimate import write_gguf

GiB = 1024**3


async def _unload(model: str, handle: object) -> None:
    return None


def config(tmp_path: Path, **kw: object) -> Config:
    return Config(paths=Paths(home=tmp_path), database_url="sqlite://", **kw)  # type: ignore[arg-type]


def test_manager_from_config_uses_budget_keep_alive_and_cores(tmp_path: Path) -> None:
    inv = Inventory(
        physical_cores=8, logical_cores=16, ram_total_bytes=32 * GiB, ram_available_bytes=16 * GiB
    )
    rm = residency_from_config(config(tmp_path, keep_alive="90s", memory_budget=2 * GiB), inv, unload=_unload)
    assert (rm.budget.ram_bytes, rm.default_keep_alive, rm.cores) == (2 * GiB, 90.0, 8)
    rm = residency_from_config(
        config(tmp_path, keep_alive="-1", engine=EngineConfig(n_threads=3)), inv, unload=_unload
    )
    assert rm.budget.ram_bytes == 12 * GiB and rm.default_keep_alive == float("inf") and rm.cores == 3
    with pytest.raises(InvalidRequest):
        residency_from_config(config(tmp_path, keep_alive="soon"), inv, unload=_unload)


def test_estimate_model_for_gguf_and_other_formats(tmp_path: Path) -> None:
    path = write_gguf(tmp_path / "m.gguf")
    params = EstimateParams(n_ctx=1024, n_slots=2, n_batch=64)
    files = (ManifestFile(path="m.gguf", digest="0" * 64, size=path.stat().st_size),)
    gguf = Manifest(name="m:1", digest="0" * 64, size=files[0].size, format="gguf", files=files)
    assert estimate_model(
        path, params, format=gguf.format, size=gguf.size, metadata=gguf.metadata
    ) == estimate_memory(read_shape(path), params)
    st = Manifest(name="e:1", digest="1" * 64, size=90_000_000, format="sentence-transformers", files=())
    est = estimate_model(tmp_path, params, format=st.format, size=st.size, metadata=st.metadata)
    assert est.total == 90_000_000 + RUNTIME_OVERHEAD_BYTES
