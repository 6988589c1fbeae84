"""The estimate against the real thing: llama.cpp's RSS after loading and decoding (integration)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from llmos.config import EngineConfig
from llmos.resources import EstimateParams, estimate_gguf

PROBE = Path(__file__).with_name("llamacpp_probe.py")
TOLERANCE = 0.25


def measure_rss(model: Path, engine: EngineConfig, derived: Path) -> int:
    args = [str(model), str(engine.n_ctx), str(engine.n_slots), str(engine.n_batch), str(derived)]
    out = subprocess.run(
        [sys.executable, str(PROBE), *args],
        check=True,
        capture_output=True,
        text=True,
        timeout=300,
    )
    return int(json.loads(out.stdout.strip().splitlines()[-1])["rss_bytes"])


def check_estimate(model: Path, derived: Path) -> None:
    engine = EngineConfig()  # the defaults the server runs with: n_ctx 8192, 16 slots, n_batch 512
    estimate = estimate_gguf(model, EstimateParams.from_engine_config(engine))
    # A Q4_1 model runs from its Q8_0 re-encoding, and a lone sequence from the file itself.
    measured = measure_rss(model, engine, derived)
    error = (estimate.total - measured) / measured
    assert abs(error) <= TOLERANCE, (
        f"{model.name}: estimate {estimate.describe()} vs measured RSS {measured / 2**20:.0f} MiB ({error:+.1%})"
    )


@pytest.mark.integration
def test_smollm2_estimate_within_25_percent_of_measured_rss(smollm2_gguf: Path, tmp_path: Path) -> None:
    check_estimate(smollm2_gguf, tmp_path)


@pytest.mark.integration
def test_gemma3_estimate_within_25_percent_of_measured_rss(gemma3_gguf: Path, tmp_path: Path) -> None:
    check_estimate(gemma3_gguf, tmp_path)
