"""The kernel's embeddings: input checks, chunked engine calls, limits, backend choice (fake engine)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from kernel.fakes import manifest
from llmos.config import load_config
from llmos.engine.fake import FakeEngine
from llmos.errors import InvalidRequest
from llmos.kernel import embeddings
from llmos.kernel.factory import thread_hosts
from llmos.kernel.loader import ModelLoader
from llmos.kernel.types import RequestMeta

from .conftest import CHAT_MODEL, EMBEDDING_MODEL, fake_embedding_kernel

META = RequestMeta(request_id="r1", tenant="t")


@pytest.mark.parametrize(
    ("inputs", "message"),
    [
        ([], "must not be empty"),
        (["ok", ""], "input[1] is an empty string"),
        ([[1, 2], []], "input[1] is an empty token list"),
        (["a", [1, 2]], "must be a string"),
        ([[1, True]], "must be a string"),
        (["x"] * (embeddings.MAX_INPUTS + 1), f"at most {embeddings.MAX_INPUTS}"),
    ],
)
def test_bad_inputs_are_refused_with_a_clear_message(inputs: Any, message: str) -> None:
    with pytest.raises(InvalidRequest) as exc:
        embeddings.check_inputs(inputs)
    assert message in exc.value.message and exc.value.param == "input"


def test_inputs_keep_their_kind() -> None:
    assert embeddings.check_inputs(["a", " "]) == ["a", " "]
    assert embeddings.check_inputs([(1, 2), [3]]) == [[1, 2], [3]]


def test_backend_follows_the_manifest_format(tmp_path: Path) -> None:
    st = replace(manifest("m:1"), format="sentence-transformers")
    hosts = thread_hosts(lambda b: FakeEngine())
    real = ModelLoader(load_config(home=tmp_path), hosts)
    assert real.backend_for(manifest("g:1")) == "llamacpp"
    assert real.backend_for(st) == "sentence_transformers"
    fake = ModelLoader(load_config(home=tmp_path, engine_backend="fake"), hosts)
    assert fake.backend_for(st) == "fake"


class RecordingEngine(FakeEngine):
    def __init__(self) -> None:
        super().__init__()
        self.embed_calls: list[int] = []

    def embed(self, inputs: Sequence[str | Sequence[int]], *, normalize: bool = True) -> list[list[float]]:
        self.embed_calls.append(len(inputs))
        return super().embed(inputs, normalize=normalize)


@pytest.mark.anyio
async def test_kernel_embeds_in_chunks_in_order_and_counts_tokens(tmp_path: Path) -> None:
    engines: list[Any] = []
    backends: list[str] = []
    kernel = fake_embedding_kernel(
        tmp_path, engines=engines, backends=backends, engine_factory=lambda b: RecordingEngine()
    )
    await kernel.start()
    try:
        texts = [f"sentence number {i}" for i in range(150)]
        result = await kernel.embed(EMBEDDING_MODEL, texts, META)
        assert backends == ["sentence_transformers"]
        engine = engines[0]
        assert engine.embed_calls == [64, 64, 22]  # CHUNK_INPUTS per engine call
        # The fake tokenizes one token per byte plus BOS.
        assert result.prompt_tokens == sum(len(t.encode()) + 1 for t in texts)
        assert result.model == EMBEDDING_MODEL and result.digest == manifest(EMBEDDING_MODEL).digest
        vectors = np.asarray(result.vectors)
        assert vectors.shape == (150, 32)
        assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0)
        one = await kernel.embed(EMBEDDING_MODEL, [texts[100]], META)
        assert np.allclose(one.vectors[0], vectors[100])  # chunking keeps the order
        tokens = await kernel.embed(EMBEDDING_MODEL, [[5, 6, 7]], META)
        assert tokens.prompt_tokens == 3
        assert kernel.residency.snapshot()[0].in_flight == 0  # the lease was released
    finally:
        await kernel.shutdown()


@pytest.mark.anyio
async def test_kernel_limits(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    kernel = fake_embedding_kernel(tmp_path, engines=[], backends=[])
    await kernel.start()
    try:
        with pytest.raises(InvalidRequest, match="32 dimensions") as exc:
            await kernel.embed(EMBEDDING_MODEL, ["x"], META, dimensions=8)
        assert exc.value.param == "dimensions"
        assert (await kernel.embed(EMBEDDING_MODEL, ["x"], META, dimensions=32)).vectors
        with pytest.raises(InvalidRequest, match="outside the model's vocabulary"):
            await kernel.embed(EMBEDDING_MODEL, [[1, 10**9]], META)
        monkeypatch.setattr(embeddings, "MAX_TOTAL_TOKENS", 10)
        with pytest.raises(InvalidRequest, match="12 tokens in all; at most 10"):
            await kernel.embed(EMBEDDING_MODEL, ["hello", "world"], META)
    finally:
        await kernel.shutdown()


@pytest.mark.anyio
async def test_an_embedding_model_refuses_to_chat(tmp_path: Path) -> None:
    from llmos.kernel.types import GenerationParams

    kernel = fake_embedding_kernel(tmp_path, engines=[], backends=[])
    await kernel.start()
    try:
        with pytest.raises(InvalidRequest, match=f"model {EMBEDDING_MODEL} is an embedding model"):
            await kernel.chat(EMBEDDING_MODEL, [{"role": "user", "content": "hi"}], GenerationParams(), META)
        assert kernel.ps() == []  # refused before loading anything
        # A generative model embeds too (the GGUF path).
        assert len((await kernel.embed(CHAT_MODEL, ["hi"], META)).vectors[0]) == 32
    finally:
        await kernel.shutdown()
