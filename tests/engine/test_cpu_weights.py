"""CPU weight re-encoding: the policy, the cached conversion, its failure modes, the wiring."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import llama_cpp
import pytest

from kernel.fakes import manifest
from llmos.config import ConfigError, load_config
from llmos.engine.base import LoadSpec
from llmos.engine.cpu_weights import (
    FTYPE_MOSTLY_Q4_1,
    FTYPE_MOSTLY_Q5_1,
    FTYPE_MOSTLY_Q8_0,
    GGML_TYPE_Q4_1,
    GGML_TYPE_Q8_0,
    conversion_target,
    converted_tensor_bytes,
    parse_mode,
)
from llmos.engine.llamacpp import LlamaCppEngine
from llmos.engine.llamacpp import requantize as llw
from llmos.errors import EngineError, InvalidRequest
from llmos.kernel.factory import process_hosts
from llmos.kernel.loader import ModelLoader

FTYPE_MOSTLY_Q4_0 = 2


def test_only_q4_1_and_q5_1_files_are_converted_and_only_on_the_cpu() -> None:
    assert conversion_target(FTYPE_MOSTLY_Q4_1, "auto") == FTYPE_MOSTLY_Q8_0
    assert conversion_target(FTYPE_MOSTLY_Q5_1, "auto") == FTYPE_MOSTLY_Q8_0
    assert conversion_target(FTYPE_MOSTLY_Q4_0, "auto") is None  # llama.cpp repacks it itself
    assert conversion_target(FTYPE_MOSTLY_Q8_0, "auto") is None
    assert conversion_target(None, "auto") is None
    assert conversion_target(FTYPE_MOSTLY_Q4_1, "converted") == FTYPE_MOSTLY_Q8_0
    assert conversion_target(FTYPE_MOSTLY_Q4_1, "native") is None
    assert conversion_target(FTYPE_MOSTLY_Q4_1, "auto", gpu_layers=10) is None


def test_mode_parsing() -> None:
    assert parse_mode(" Native ") == "native"
    assert parse_mode("AUTO") == "auto"
    assert parse_mode("converted") == "converted"
    with pytest.raises(InvalidRequest, match="auto, converted, native"):
        parse_mode("q8")


def test_converted_bytes_count_q4_1_tensors_as_q8_0() -> None:
    # 64 Q4_1 values (2 blocks: 40 bytes) become 68 bytes; a Q8_0 tensor keeps its 34 bytes.
    assert (
        converted_tensor_bytes(
            {GGML_TYPE_Q4_1: 64, GGML_TYPE_Q8_0: 32}, {GGML_TYPE_Q4_1: 40, GGML_TYPE_Q8_0: 34}
        )
        == 68 + 34
    )


def test_config_reads_cpu_weights(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    assert load_config(home=tmp_path).engine.cpu_weights == "auto"
    monkeypatch.setenv("LLMOS_CPU_WEIGHTS", "native")
    assert load_config(home=tmp_path).engine.cpu_weights == "native"
    monkeypatch.setenv("LLMOS_CPU_WEIGHTS", "fast")
    with pytest.raises(
        ConfigError,
        match="LLMOS_CPU_WEIGHTS='fast' is not valid: expected one of 'auto', 'converted' or 'native'",
    ):
        load_config(home=tmp_path)


def test_the_kernel_keeps_conversions_under_llmos_home(tmp_path: Path) -> None:
    config = load_config(home=tmp_path, cpu_weights="native")
    loader = ModelLoader(config, process_hosts)
    spec = loader.load_spec(manifest("m:1"), tmp_path / "model.gguf", 2)
    assert spec.derived_dir == tmp_path / "derived" == config.paths.derived
    assert spec.cpu_weights == "native"


def test_derived_names_follow_the_source(tmp_path: Path) -> None:
    blob = tmp_path / ("sha256-" + "ab" * 32)
    blob.write_bytes(b"x")
    assert llw.derived_name(blob, FTYPE_MOSTLY_Q8_0) == blob.name + ".q8_0.gguf"
    other = tmp_path / "model.gguf"
    other.write_bytes(b"x")
    first = llw.derived_name(other, FTYPE_MOSTLY_Q8_0)
    assert first.startswith("model-") and first.endswith(".q8_0.gguf")
    other.write_bytes(b"changed")  # a new file under the same name gets a new conversion
    assert llw.derived_name(other, FTYPE_MOSTLY_Q8_0) != first


def test_temps_of_dead_conversions_are_swept(tmp_path: Path) -> None:
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    stale = tmp_path / f".tmp-{int(dead.stdout)}-abc.gguf"
    live = tmp_path / f".tmp-{os.getpid()}-def.gguf"
    keep = tmp_path / "model.q8_0.gguf"
    for p in (stale, live, keep):
        p.write_bytes(b"x")
    assert llw.sweep_temps(tmp_path) == 1
    assert not stale.exists() and live.exists() and keep.exists()


@pytest.mark.integration
def test_a_q4_1_model_runs_from_a_cached_q8_0_conversion(
    smollm2_gguf: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    converted: list[Path] = []
    real_convert = llw.convert

    def counting(source: Path, dest: Path, target: int) -> None:
        converted.append(dest)
        real_convert(source, dest, target)

    monkeypatch.setattr(llw, "convert", counting)
    first = llw.choose_weights(smollm2_gguf, "auto", derived_dir=tmp_path)
    assert first.file_type == FTYPE_MOSTLY_Q4_1 and first.converted_to == FTYPE_MOSTLY_Q8_0
    assert first.path.parent == tmp_path and first.path.name.endswith(".q8_0.gguf")
    assert converted == [first.path] and first.description == "q8_0 (converted from q4_1)"
    assert llw.file_type(first.path) == FTYPE_MOSTLY_Q8_0
    assert [p.name for p in tmp_path.iterdir()] == [first.path.name]  # no temp left behind
    mtime = first.path.stat().st_mtime_ns
    again = llw.choose_weights(smollm2_gguf, "auto", derived_dir=tmp_path)
    assert again.path == first.path and converted == [first.path]  # the cached file, not converted again
    assert first.path.stat().st_mtime_ns == mtime
    native = llw.choose_weights(smollm2_gguf, "native", derived_dir=tmp_path)
    assert native.path == smollm2_gguf and native.converted_to is None
    assert native.description == "q4_1 (as stored)"


@pytest.mark.integration
def test_a_failed_conversion_says_how_to_go_on_and_leaves_nothing(
    smollm2_gguf: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(src: bytes, dst: bytes, params: object) -> int:
        Path(dst.decode()).write_bytes(b"GGUF half")  # what a crash mid-write would leave
        return 1

    monkeypatch.setattr(llama_cpp, "llama_model_quantize", broken)
    with pytest.raises(EngineError, match="LLMOS_CPU_WEIGHTS=native"):
        llw.choose_weights(smollm2_gguf, "auto", derived_dir=tmp_path)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.integration
def test_an_unloadable_cached_conversion_is_dropped_and_the_source_loaded(
    smollm2_gguf: Path, tmp_path: Path
) -> None:
    cached = tmp_path / llw.derived_name(smollm2_gguf, FTYPE_MOSTLY_Q8_0)
    cached.write_bytes(b"GGUF" + b"\0" * 64)  # damaged on disk
    engine = LlamaCppEngine()
    info = engine.load(LoadSpec(model_path=smollm2_gguf, n_ctx=512, n_slots=1, derived_dir=tmp_path))
    try:
        assert info.weights_path == str(smollm2_gguf) and info.weights == "q4_1 (as stored)"
        assert not cached.exists()
        assert engine.tokenize("hello")
    finally:
        engine.unload()
