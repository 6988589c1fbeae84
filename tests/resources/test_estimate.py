"""Memory estimates from GGUF headers (synthetic files here; real models in test_estimate_measured)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from gguf import GGMLQuantizationType, GGUFWriter

from llmos.config import EngineConfig
from llmos.engine.gguf_header import read_gguf_header
from llmos.errors import InvalidModelFile
from llmos.resources import EstimateParams, ModelShape, estimate_gguf, estimate_memory, read_shape
from llmos.resources.estimate import RUNTIME_OVERHEAD_BYTES, kv_cells


def write_gguf(
    path: Path, arch: str = "llama", *, swa: int = 0, key_length: int | None = None, q4_1: bool = False
) -> Path:
    """A tiny GGUF; with ``q4_1`` a "mostly Q4_1" file whose attn_q is Q4_1 (160 bytes) instead of Q8_0."""
    w = GGUFWriter(str(path), arch)
    w.add_block_count(6)
    w.add_context_length(4096)
    w.add_embedding_length(64)
    w.add_feed_forward_length(128)
    w.add_head_count(4)
    w.add_head_count_kv(2)
    if key_length:
        w.add_key_length(key_length)
        w.add_value_length(key_length)
    if swa:
        w.add_sliding_window(swa)
    w.add_tokenizer_model("gpt2")
    w.add_token_list([f"t{i}" for i in range(100)])
    w.add_token_merges([f"t{i} t{i + 1}" for i in range(40)])
    w.add_tensor("token_embd.weight", np.zeros((100, 64), dtype=np.float32))  # 25,600 bytes
    if q4_1:
        w.add_file_type(3)  # LLAMA_FTYPE_MOSTLY_Q4_1
        q41 = np.zeros((4, 2 * 20), dtype=np.uint8)  # 4 rows of 64 q4_1 values: 160 bytes
        w.add_tensor("blk.0.attn_q.weight", q41, raw_dtype=GGMLQuantizationType.Q4_1)
    else:
        q8 = np.zeros((4, 2 * 34), dtype=np.uint8)  # 4 rows of 64 q8_0 values: 272 bytes
        w.add_tensor("blk.0.attn_q.weight", q8, raw_dtype=GGMLQuantizationType.Q8_0)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


def test_header_reader_sums_tensor_bytes_and_skips_arrays(tmp_path: Path) -> None:
    path = write_gguf(tmp_path / "m.gguf")
    header = read_gguf_header(path)
    assert header.tensor_count == 2
    assert header.tensor_bytes == 100 * 64 * 4 + 4 * 2 * 34
    assert header.fields["llama.block_count"] == 6
    assert header.fields["tokenizer.ggml.tokens"].length == 100
    assert header.data_offset % 32 == 0 and header.data_offset < header.file_size


def test_shape_and_kv_formula(tmp_path: Path) -> None:
    shape = read_shape(write_gguf(tmp_path / "m.gguf"))
    # head_dim = 64 / 4 = 16; per layer n_head_kv × (dk + dv) = 2 × 32 = 64; 6 layers.
    assert (shape.n_layer, shape.kv_width_full, shape.kv_width_swa, shape.n_vocab, shape.n_merges) == (
        6,
        384,
        0,
        100,
        40,
    )
    est = estimate_memory(shape, EstimateParams(n_ctx=1024, n_slots=4, n_batch=64))
    assert est.kv_cache == 1024 * 384 * 2  # f16
    assert est.compute == 2 * 4 * 100 * 4 + 64 * (4 * 64 + 2 * 128) * 4
    assert est.runtime == RUNTIME_OVERHEAD_BYTES and est.weights == shape.tensor_bytes
    assert est.total == est.weights + est.vocab + est.kv_cache + est.compute + est.runtime
    q8 = estimate_memory(
        shape, EstimateParams(n_ctx=1024, n_slots=4, n_batch=64, type_k="q8_0", type_v="q8_0")
    )
    assert q8.kv_cache == 1024 * 384 * 34 // 32
    with pytest.raises(InvalidModelFile, match="unknown KV cache type"):
        estimate_memory(shape, EstimateParams(type_k="f8"))


def test_explicit_head_dims_and_sliding_window_layers(tmp_path: Path) -> None:
    shape = read_shape(write_gguf(tmp_path / "g.gguf", "gemma3", swa=128, key_length=32))
    # gemma3: every 6th layer global → 1 full + 5 SWA layers of 2 × (32 + 32) = 128.
    assert (shape.kv_width_full, shape.kv_width_swa, shape.n_swa) == (128, 640, 128)
    full = EstimateParams(n_ctx=4096, n_slots=4, n_batch=256)
    assert kv_cells(shape, full) == (4096, 4096)  # swa_full: llama.cpp's default
    split = EstimateParams(n_ctx=4096, n_slots=4, n_batch=256, swa_full=False, kv_unified=False)
    assert kv_cells(shape, split) == (4096, 4 * 512)
    unified = EstimateParams(n_ctx=4096, n_slots=4, n_batch=256, swa_full=False, kv_unified=True)
    assert kv_cells(shape, unified) == (4096, 768)
    # An architecture without a known layout: every layer counted as full attention.
    other = read_shape(write_gguf(tmp_path / "o.gguf", "mystery", swa=128, key_length=32))
    assert (other.kv_width_full, other.kv_width_swa) == (768, 0)


def test_shape_round_trips_through_manifest_metadata(tmp_path: Path) -> None:
    path = write_gguf(tmp_path / "m.gguf")
    shape = read_shape(path)
    metadata = {"other": 1, **shape.to_metadata()}
    assert ModelShape.from_metadata(metadata) == shape
    assert ModelShape.from_metadata({}) is None
    assert ModelShape.from_metadata({"resource_shape": {"architecture": "x"}}) is None
    params = EstimateParams.from_engine_config(EngineConfig(n_ctx=2048, n_slots=2, n_batch=128))
    # A stored shape is used without opening the file.
    assert estimate_gguf(tmp_path / "missing.gguf", params, metadata) == estimate_memory(shape, params)


def test_gpu_offload_splits_ram_and_vram(tmp_path: Path) -> None:
    shape = read_shape(write_gguf(tmp_path / "m.gguf"))
    est = estimate_memory(shape, EstimateParams(device="cuda:0", gpu_layers=99))
    assert est.device == "cuda:0"
    assert est.vram == est.weights + est.kv_cache + est.compute
    assert est.charges() == {"cpu": est.vocab + est.runtime, "cuda:0": est.vram}
    assert estimate_memory(shape, EstimateParams(device="cuda:0", gpu_layers=0)).charges() == {
        "cpu": est.total
    }


@pytest.mark.parametrize(
    "content", [b"", b"not a gguf file at all, just text", b"GGUF\x03\x00\x00\x00" + b"\xff" * 16]
)
def test_invalid_files_raise_invalid_model_file(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "bad.gguf"
    path.write_bytes(content)
    with pytest.raises(InvalidModelFile):
        read_shape(path)
    with pytest.raises(InvalidModelFile):
        read_shape(tmp_path / "absent.gguf")


def test_truncated_header_raises(tmp_path: Path) -> None:
    data = write_gguf(tmp_path / "m.gguf").read_bytes()
    cut = tmp_path / "cut.gguf"
    cut.write_bytes(data[:300])
    with pytest.raises(InvalidModelFile, match="truncated"):
        read_gguf_header(cut)


def test_a_q4_1_file_is_estimated_as_the_q8_0_encoding_the_cpu_engine_maps(tmp_path: Path) -> None:
    path = write_gguf(tmp_path / "q41.gguf", q4_1=True)
    header = read_gguf_header(path)
    assert header.elements_by_type == {0: 6400, 3: 256}
    assert header.bytes_by_type == {0: 25_600, 3: 160}
    shape = read_shape(path)
    assert shape.tensor_bytes == 25_600 + 160
    assert shape.cpu_tensor_bytes == 25_600 + 8 * 34  # 8 blocks of 32 values as Q8_0
    converted = estimate_memory(shape, EstimateParams(cpu_weights="converted"))
    native = estimate_memory(shape, EstimateParams(cpu_weights="native"))
    assert converted.weights - native.weights == 8 * 34 - 160
    assert converted.kv_cache == native.kv_cache
    # auto adds the solo lane: the file as stored beside its re-encoding, and one slot's KV cells
    params = EstimateParams(cpu_weights="auto", n_slots=4)
    auto = estimate_memory(shape, params)
    assert auto.weights == shape.cpu_tensor_bytes + shape.tensor_bytes
    assert auto.kv_cache == converted.kv_cache + converted.kv_cache // 4
    # Offloaded to a GPU the file is mapped as it is.
    gpu = estimate_memory(shape, EstimateParams(device="cuda:0", gpu_layers=99))
    assert gpu.weights == shape.tensor_bytes
    # The engine config's choice reaches the estimate.
    params = EstimateParams.from_engine_config(EngineConfig(cpu_weights="native"))
    assert params.cpu_weights == "native"


def test_other_file_types_keep_their_size(tmp_path: Path) -> None:
    shape = read_shape(write_gguf(tmp_path / "m.gguf"))  # no general.file_type, Q8_0 + F32
    assert shape.cpu_tensor_bytes == 0
    assert estimate_memory(shape, EstimateParams(cpu_weights="auto")).weights == shape.tensor_bytes
