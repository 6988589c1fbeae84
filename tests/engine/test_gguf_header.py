"""The one GGUF reader: a model's facts as its manifest keeps them (the header-level reads the
memory estimates make are tested beside them, in ``tests/resources/test_estimate.py``)."""

from __future__ import annotations

from pathlib import Path

import gguf
import numpy as np
import pytest

from llmos.engine.gguf_header import read_gguf_header, read_gguf_meta
from llmos.errors import InvalidModelFile
from registry.helpers import write_gguf


def test_reads_a_crafted_file(tmp_path: Path) -> None:
    meta = read_gguf_meta(write_gguf(tmp_path / "m.gguf", n_vocab=16, n_embd=8, template="{{ x }}"))
    assert meta.architecture == "llama"
    assert meta.parameter_count == 16 * 8 + 8
    assert meta.quantization == "F32"
    assert (meta.context_length, meta.embedding_length, meta.block_count) == (256, 8, 1)
    assert (meta.head_count, meta.head_count_kv) == (2, 1)
    assert meta.chat_template == "{{ x }}"
    assert meta.tensor_bytes == (16 * 8 + 8) * 4


def test_reads_smollm2(smollm2_gguf: Path) -> None:
    meta = read_gguf_meta(smollm2_gguf)
    assert meta.architecture == "llama"
    assert meta.quantization == "Q4_1"
    assert 130_000_000 < meta.parameter_count < 140_000_000
    assert (meta.context_length, meta.embedding_length, meta.block_count) == (8192, 576, 30)
    assert (meta.head_count, meta.head_count_kv, meta.vocab_size) == (9, 3, 49152)
    assert meta.chat_template is not None and "<|im_start|>" in meta.chat_template
    assert 0 < meta.tensor_bytes < smollm2_gguf.stat().st_size


def test_not_gguf(tmp_path: Path) -> None:
    p = tmp_path / "model.gguf"
    p.write_bytes(b"PK\x03\x04 this is a zip, not a model")
    with pytest.raises(InvalidModelFile, match="not a GGUF model file"):
        read_gguf_meta(p)


def test_empty_and_missing(tmp_path: Path) -> None:
    (tmp_path / "empty.gguf").write_bytes(b"")
    with pytest.raises(InvalidModelFile, match="not a GGUF"):
        read_gguf_meta(tmp_path / "empty.gguf")
    with pytest.raises(InvalidModelFile, match="cannot read"):
        read_gguf_meta(tmp_path / "missing.gguf")


@pytest.mark.parametrize("keep", [8, 40, 200, -100, -1])
def test_truncated(tmp_path: Path, keep: int) -> None:
    data = write_gguf(tmp_path / "full.gguf").read_bytes()
    cut = tmp_path / "cut.gguf"
    cut.write_bytes(data[:keep])
    with pytest.raises(InvalidModelFile, match="truncated"):
        read_gguf_meta(cut)


def test_a_file_without_a_template_gets_a_guess_from_its_vocabulary(tmp_path: Path) -> None:
    path = tmp_path / "gemma.gguf"
    w = gguf.GGUFWriter(str(path), "gemma3")
    w.add_token_list(["<pad>", "<start_of_turn>", "<end_of_turn>", "hello"])
    w.add_tensor("token_embd.weight", np.zeros((4, 8), dtype=np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    meta = read_gguf_meta(path)
    assert meta.chat_template is None and meta.vocab_size == 4
    assert meta.chat_format_guess is not None and meta.chat_format_guess.format.name == "gemma"
    # Only the names asked for are decoded; other string arrays keep their length alone.
    assert read_gguf_header(path).fields["tokenizer.ggml.tokens"].values is None
    tokens = read_gguf_header(path, strings=["tokenizer.ggml.tokens"]).fields["tokenizer.ggml.tokens"]
    assert tokens.values == ("<pad>", "<start_of_turn>", "<end_of_turn>", "hello")


def test_a_file_with_a_template_is_not_guessed(tmp_path: Path) -> None:
    meta = read_gguf_meta(write_gguf(tmp_path / "m.gguf", template="{{ x }}"))
    assert meta.chat_format_guess is None and meta.extra == {"gguf_version": 3}
