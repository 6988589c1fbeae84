"""The real server over SmolLM2's GGUF: llama.cpp's embedding mode through ``/v1/embeddings``,
driven by the official ``openai`` client and the llmos SDK, while the same model chats."""

from __future__ import annotations

import concurrent.futures

import numpy as np
import openai
import pytest

from llmos.sdk import AsyncClient, Client

pytestmark = pytest.mark.integration

MODEL = "smollm2:135m"
TEXTS = [
    "The cat sat on the mat.",
    "A kitten was sitting on the rug.",
    "Quarterly revenue grew by four percent.",
]


def _cos(a: list[float], b: list[float]) -> float:
    return float(np.dot(a, b))


def test_openai_client_embeds_while_the_model_chats(live_server: str) -> None:
    client = openai.OpenAI(base_url=live_server + "/v1", api_key="unused", max_retries=0)
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        chat = pool.submit(
            client.chat.completions.create,
            model=MODEL,
            messages=[{"role": "user", "content": "Count from one to five."}],
            max_tokens=24,
            temperature=0,
        )
        result = client.embeddings.create(model=MODEL, input=TEXTS)  # base64 on the wire
        answer = chat.result(timeout=300)
    assert answer.choices[0].message.content
    v = [d.embedding for d in result.data]
    assert [d.index for d in result.data] == [0, 1, 2] and len(v[0]) == 576
    assert np.allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-4)
    assert _cos(v[0], v[1]) > _cos(v[0], v[2]) and _cos(v[0], v[1]) > _cos(v[1], v[2])
    assert result.usage.prompt_tokens > 3 * 5
    floats = client.embeddings.create(model=MODEL, input=TEXTS[0], encoding_format="float")
    assert _cos(floats.data[0].embedding, v[0]) > 0.999


def test_sdk_clients(live_server: str) -> None:
    with Client(live_server) as client:
        result = client.embeddings.create(MODEL, TEXTS)
    assert result.model == MODEL and len(result.vectors) == 3 and result.prompt_tokens > 15

    async def run() -> list[list[float]]:
        async with AsyncClient(live_server) as aclient:
            return (await aclient.embeddings.create(MODEL, TEXTS[1])).vectors

    import asyncio

    again = asyncio.run(run())
    assert _cos(again[0], result.vectors[1]) > 0.999


def test_an_input_longer_than_the_embedding_context_is_a_400(live_server: str) -> None:
    client = openai.OpenAI(base_url=live_server + "/v1", api_key="unused", max_retries=0)
    with pytest.raises(openai.BadRequestError) as exc:
        client.embeddings.create(model=MODEL, input=[[1] * 3000])
    assert "maximum context length for embeddings is 2048 tokens" in str(exc.value)
