"""Documents embedded by a real model: a real server (uvicorn subprocess, SQLite with sqlite-vec,
llama.cpp worker) with smollm2:135m, whose embeddings (``kernel.embed``) index the documents.
Then hybrid search and retrieval-augmented chat with citations, end to end."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

import llmos
from apps.realserver import MODEL, RealServer, start_real_server, stop_server  # tests/ is on sys.path

pytestmark = pytest.mark.integration

DOCS = {
    "rockets.md": "Rockets burn fuel and push exhaust out of the engine to reach orbit around the Earth.",
    "bread.txt": "To bake bread, mix flour, water, salt and yeast, knead the dough, let it rise, then bake.",
    "tomatoes.html": "<p>Tomato plants need full sun, regular watering and support stakes as they grow.</p>",
}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, smollm2_gguf: Path) -> Iterator[RealServer]:
    s = start_real_server(tmp_path_factory.mktemp("data") / "home", smollm2_gguf)
    try:
        yield s
    finally:
        stop_server(s)


def test_documents_embedded_by_smollm2_are_found_and_cited(server: RealServer) -> None:
    with llmos.Client(server.url, timeout=600) as client:
        col = client.data.create_collection("garden", embedding_model=MODEL, chunk_tokens=64)
        assert col.embedding_model == MODEL
        for name, body in DOCS.items():
            doc = client.data.add_document("garden", body.encode(), name=name)
            assert doc.chunks == 1 and doc.embedding_model == MODEL
        info = client.data.get_collection("garden")
        assert info.dimensions == 576, "SmolLM2-135M's hidden size"
        for query, expected in (
            ("how does a rocket reach orbit", "rockets.md"),
            ("bake bread dough", "bread.txt"),
        ):
            hits = client.data.search("garden", query, top_k=3)
            assert hits[0].document == expected, [(h.document, h.score) for h in hits]
            assert hits[0].vector_score is not None
        vector = client.data.search("garden", "knead the dough with flour and yeast", mode="vector", top_k=3)
        assert vector[0].document == "bread.txt", [(h.document, h.vector_score) for h in vector]

    r = httpx.post(
        f"{server.url}/v1/chat/completions",
        json={
            "model": MODEL,
            "messages": [{"role": "user", "content": "What do tomato plants need?"}],
            "max_tokens": 16,
            "temperature": 0,
            "collections": ["garden"],
            "retrieval": {"top_k": 2},
        },
        timeout=600,
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["choices"][0]["message"]["content"]
    assert body["citations"][0]["document"] == "tomatoes.html"
    assert body["usage"]["prompt_tokens"] > 40, "the retrieved passages are in the prompt"
