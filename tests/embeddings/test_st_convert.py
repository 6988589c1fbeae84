"""A sentence-transformers BERT folder (all-MiniLM-L6-v2, the catalog's minilm:l6) on llama.cpp:
converted once to GGUF, embedding like sentence-transformers itself, with no torch involved."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from llmos.engine.base import LoadSpec
from llmos.engine.llamacpp.st_convert import CONVERSION, convert, inspect_folder
from llmos.engine.sentence_transformers_engine import SentenceTransformersEngine
from llmos.errors import InvalidModelFile, InvalidRequest, MissingDependency

SENTENCES = [
    "The cat sat on the mat.",
    "A kitten was sitting on the rug.",
    "Refunds are issued within 14 days of purchase.",
    "Déjà vu: a naïve café owner's résumé, in ÜPPERCASE!",
    "Quantum entanglement links particles across any distance. " * 8,
]


@pytest.fixture
def engine(minilm_folder: Path, tmp_path: Path) -> Iterator[SentenceTransformersEngine]:
    e = SentenceTransformersEngine()
    e.load(
        LoadSpec(
            model_path=minilm_folder,
            format="sentence-transformers",
            embedding=True,
            n_ctx=1024,
            n_slots=4,
            n_batch=512,
            derived_dir=tmp_path / "derived",
        )
    )
    yield e
    e.unload()


@pytest.mark.integration
def test_minilm_runs_on_llamacpp_from_a_conversion_kept_for_next_time(
    engine: SentenceTransformersEngine, minilm_folder: Path, tmp_path: Path
) -> None:
    info = engine.info
    assert (info.backend, info.embedding_dim, info.n_vocab) == ("llamacpp", 384, 30522)
    converted = tmp_path / "derived" / f"{minilm_folder.name}.{CONVERSION}"
    assert info.weights_path == str(converted) and converted.is_file()
    assert [p.name for p in converted.parent.iterdir()] == [converted.name], "no temp file left"
    # WordPiece as BERT does it: lower-cased, accents stripped, [CLS] ... [SEP].
    assert engine.tokenize("Hello, World! naïve") == [101, 7592, 1010, 2088, 999, 15743, 102]
    v = np.asarray(engine.embed(SENTENCES[:3]))
    assert np.allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-5)
    sims = v @ v.T
    assert sims[0, 1] > 0.5 > sims[0, 2]
    # Inputs are bounded by the model's max_seq_length (256), as sentence-transformers bounds them.
    assert info.n_ctx == 256
    with pytest.raises(InvalidRequest, match="maximum context length for embeddings is 256 tokens"):
        engine.embed(["word " * 300])


@pytest.mark.integration
def test_vectors_match_sentence_transformers(engine: SentenceTransformersEngine, minilm_folder: Path) -> None:
    st = pytest.importorskip("sentence_transformers", reason="the reference needs the [ml] extra")
    reference = st.SentenceTransformer(str(minilm_folder), device="cpu", local_files_only=True)
    expected = reference.encode(SENTENCES, normalize_embeddings=True)
    got = np.asarray(engine.embed(SENTENCES))
    cosines = np.sum(got * expected, axis=1) / np.linalg.norm(got, axis=1) / np.linalg.norm(expected, axis=1)
    assert cosines.min() >= 0.999, cosines
    assert engine.tokenize(SENTENCES[3]) == reference.tokenizer(SENTENCES[3])["input_ids"]


def _folder(tmp_path: Path, minilm_folder: Path, **config: object) -> Path:
    folder = tmp_path / "model"
    shutil.copytree(minilm_folder, folder, ignore=shutil.ignore_patterns("model.safetensors"))
    (folder / "model.safetensors").write_bytes(b"")
    cfg = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**cfg, **config}))
    return folder


def test_only_bert_encoders_with_mean_or_cls_pooling_convert(tmp_path: Path, minilm_folder: Path) -> None:
    assert "not BERT" in str(inspect_folder(_folder(tmp_path / "a", minilm_folder, model_type="roberta")))
    max_pooled = _folder(tmp_path / "b", minilm_folder)
    (max_pooled / "1_Pooling" / "config.json").write_text(json.dumps({"pooling_mode_max_tokens": True}))
    assert "pooling (max)" in str(inspect_folder(max_pooled))


def test_a_model_llamacpp_cannot_run_needs_the_ml_extra_without_torch(
    tmp_path: Path, minilm_folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import llmos.engine.st_torch as st_torch

    def missing() -> tuple[object, object]:
        raise MissingDependency(
            "sentence-transformers models need torch; install them with: pip install 'llmos[ml]'"
        )

    monkeypatch.setattr(st_torch, "_import_ml", missing)
    folder = _folder(tmp_path, minilm_folder, model_type="roberta")
    with pytest.raises(MissingDependency, match=r"llmos\[ml\]"):
        SentenceTransformersEngine().load(LoadSpec(model_path=folder, format="sentence-transformers"))


def test_a_broken_weights_file_leaves_nothing_behind(tmp_path: Path, minilm_folder: Path) -> None:
    folder = _folder(tmp_path, minilm_folder)  # an empty model.safetensors
    dest = tmp_path / "derived" / f"model.{CONVERSION}"
    with pytest.raises(InvalidModelFile, match="not a readable safetensors file"):
        convert(folder, dest)
    assert list(dest.parent.iterdir()) == []
