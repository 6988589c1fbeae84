"""The real server over ``minilm:l6`` (a sentence-transformers folder, run on llama.cpp from its
GGUF conversion): its own worker process, driven by the official ``openai`` client. The vectors
are compared with sentence-transformers' own when the [ml] extra is installed."""

from __future__ import annotations

import numpy as np
import openai
import pytest

pytestmark = pytest.mark.integration

MODEL = "minilm:l6"
TEXTS = [
    "The cat sat on the mat.",
    "A kitten was sitting on the rug.",
    "Quarterly revenue grew by four percent.",
]


@pytest.fixture(scope="module")
def client(live_server: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=live_server + "/v1", api_key="unused", max_retries=0, timeout=300)


def test_similar_sentences_score_closer(client: openai.OpenAI) -> None:
    result = client.embeddings.create(model=MODEL, input=TEXTS)  # base64, decoded by openai
    v = np.asarray([d.embedding for d in result.data])
    assert v.shape == (3, 384)
    sims = v @ v.T
    assert sims[0, 1] > 0.5 > sims[0, 2] and sims[0, 1] > sims[1, 2]
    # [CLS] and [SEP] around each text: the usage counts them.
    assert result.usage.prompt_tokens == result.usage.total_tokens == 9 + 10 + 9


def test_vectors_are_sentence_transformers_own(client: openai.OpenAI, real_home: object) -> None:
    st = pytest.importorskip("sentence_transformers", reason="the reference needs the [ml] extra")
    from llmos.config import load_config
    from llmos.registry import open_registry

    registry = open_registry(load_config(home=real_home))
    folder = registry.model_path(registry.resolve(MODEL))
    reference = st.SentenceTransformer(str(folder), device="cpu", local_files_only=True).encode(TEXTS)
    v = np.asarray([d.embedding for d in client.embeddings.create(model=MODEL, input=TEXTS).data])
    cosines = np.sum(v * reference, axis=1) / np.linalg.norm(reference, axis=1)
    assert cosines.min() >= 0.999, cosines


def test_token_arrays_and_floats(client: openai.OpenAI) -> None:
    text = client.embeddings.create(model=MODEL, input="hello world", encoding_format="float")
    tokens = client.embeddings.create(model=MODEL, input=[101, 7592, 2088, 102], encoding_format="float")
    batch = client.embeddings.create(model=MODEL, input=[[101, 7592, 2088, 102], [101, 2088, 102]])
    assert np.allclose(text.data[0].embedding, tokens.data[0].embedding, atol=1e-6)
    assert np.allclose(batch.data[0].embedding, tokens.data[0].embedding, atol=1e-5)
    assert tokens.usage.prompt_tokens == 4 and batch.usage.prompt_tokens == 7


def test_limits_and_refusals(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as exc:
        client.embeddings.create(model=MODEL, input="word " * 300)
    assert "maximum context length for embeddings is 256 tokens" in str(exc.value)
    with pytest.raises(openai.BadRequestError) as exc:
        client.embeddings.create(model=MODEL, input="x", dimensions=128)
    assert "384 dimensions" in str(exc.value)
    with pytest.raises(openai.BadRequestError) as exc:
        client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "hi"}])
    assert "model minilm:l6 is an embedding model" in str(exc.value)
