"""llama.cpp's embedding mode on SmolLM2 (a generative GGUF): a context of its own, mean-pooled,
batched by sequence id, and leaving the generation context's continuous batching untouched."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from llmos.engine.base import LoadSpec, SamplingParams, SequenceSpec
from llmos.engine.llamacpp import LlamaCppEngine, embedding
from llmos.errors import InvalidRequest

pytestmark = pytest.mark.integration

SIMILAR = ("The cat sat on the mat.", "A kitten was sitting on the rug.")
UNRELATED = "Quarterly revenue grew by four percent."
GREEDY = SamplingParams(temperature=0.0, max_tokens=12, ignore_eos=True)

MakeEngine = Callable[..., LlamaCppEngine]


@pytest.fixture
def make_engine(smollm2_gguf: Path) -> Iterator[MakeEngine]:
    made: list[LlamaCppEngine] = []

    def factory(**extra: Any) -> LlamaCppEngine:
        engine = LlamaCppEngine()
        engine.load(LoadSpec(model_path=smollm2_gguf, n_ctx=2048, n_slots=4, n_batch=256, extra=extra))
        made.append(engine)
        return engine

    yield factory
    for engine in made:
        engine.unload()


def _run(engine: LlamaCppEngine, prompt: list[int], *, embed_after: int | None = None) -> list[int]:
    engine.admit(SequenceSpec("s", tuple(prompt), GREEDY))
    tokens: list[int] = []
    steps = 0
    while engine.sequences():
        result = engine.step()
        steps += 1
        for out in result.outputs:
            tokens.extend(out.token_ids)
        if steps == embed_after:
            engine.embed([*SIMILAR, UNRELATED])  # in the middle of a generation
    return tokens


def test_similar_sentences_score_closer_than_unrelated(make_engine: MakeEngine) -> None:
    engine = make_engine()
    v = np.asarray(engine.embed([*SIMILAR, UNRELATED]))
    assert v.shape == (3, engine.info.embedding_dim)
    assert np.allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-5)
    assert v[0] @ v[1] > v[0] @ v[2] and v[0] @ v[1] > v[1] @ v[2]


def test_batching_does_not_mix_inputs(make_engine: MakeEngine, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(embedding, "MAX_SEQUENCES", 4)  # 7 inputs: two decodes, of 4 and 3
    engine = make_engine()
    texts = [*SIMILAR, UNRELATED, "Dogs bark.", "Hello there!", "Sales rose in March.", "A cat naps."]
    together = np.asarray(engine.embed(texts))
    alone = np.asarray([engine.embed([t])[0] for t in (texts[0], texts[4], texts[6])])
    # llama.cpp is not bit-exact across batch shapes: the same direction, not the same bits.
    assert np.all(np.sum(together[[0, 4, 6]] * alone, axis=1) > 0.999)
    tokens = engine.tokenize(texts[5], add_special=True, parse_special=False)
    assert float(np.asarray(engine.embed([tokens])[0]) @ together[5]) > 0.999  # a token list as given


def test_embedding_leaves_generation_untouched(make_engine: MakeEngine) -> None:
    engine = make_engine()
    prompt = engine.tokenize("Once upon a time, in a small village,")
    plain = _run(engine, prompt)
    interrupted = _run(engine, prompt, embed_after=3)
    assert interrupted == plain and len(plain) == GREEDY.max_tokens
    assert engine.health().ok


def test_an_input_longer_than_the_context_is_refused_naming_the_limit(make_engine: MakeEngine) -> None:
    engine = make_engine(embedding_ctx=64)
    with pytest.raises(InvalidRequest, match=r"is 100 tokens; .* embeddings is 64 tokens") as exc:
        engine.embed([[1] * 100])
    assert exc.value.param == "input"
    assert len(engine.embed([[1] * 64])[0]) == engine.info.embedding_dim
    with pytest.raises(InvalidRequest, match="outside the vocabulary"):
        engine.embed([[engine.info.n_vocab]])
