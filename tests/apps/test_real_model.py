"""The task pipelines and the application services on the real small model (smollm2:135m on
llama.cpp, behind a real server), checking structure, not wording: answers valid against their
schemas, tools really called with schema-valid arguments and their results fed back, recommended
items that exist in the catalog, and the support flow asking for a title, then quoting the
catalog's price. Inference is kept small (short texts, few tokens): CI machines are shared."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
from jsonschema import Draft202012Validator

import llmos
from llmos.apps.catalog import load_catalog
from llmos.apps.dialogue import Assistant, force_tool
from llmos.apps.nlu import NLU
from llmos.apps.recommend import Recommender
from llmos.apps.support import SupportBot
from llmos.apps.tools import default_tools

from .realserver import MODEL, RealServer, start_real_server, stop_server

pytestmark = pytest.mark.integration


def valid(instance: object, schema: dict[str, object]) -> bool:
    return not list(Draft202012Validator(schema).iter_errors(instance))


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, smollm2_gguf: Path) -> Iterator[RealServer]:
    s = start_real_server(tmp_path_factory.mktemp("apps") / "home", smollm2_gguf)
    try:
        yield s
    finally:
        stop_server(s)


@pytest.fixture
def client(server: RealServer) -> Iterator[llmos.Client]:
    with llmos.Client(server.url, timeout=600) as c:
        yield c


def test_every_task_answers_json_valid_against_its_schema(client: llmos.Client) -> None:
    text = "<p>Alice from Paris bought a laptop from Dell on Monday.</p><p>It broke &amp; she is angry.</p>"
    results = [
        client.tasks.sentiment(text, model=MODEL),
        client.tasks.classify(text, ["complaint", "praise", "question"], model=MODEL),
        client.tasks.summarize(text, max_words=12, model=MODEL),
        client.tasks.translate("Good morning, friend.", "French", model=MODEL),
        client.tasks.extract_entities(text, types=["person", "city", "company"], max_entities=3, model=MODEL),
    ]
    for r in results:
        assert r.finish_reason == "stop", r
        assert valid(r.output, r.schema), (r.task, r.output)
        assert r.usage.completion_tokens > 0 and r.model == MODEL
    assert results[0].input.html_stripped and not results[0].input.truncated
    assert results[0].output["sentiment"] in ("positive", "negative", "neutral")
    assert results[1].output["label"] in ("complaint", "praise", "question")
    for entity in results[4].output["entities"]:
        assert (
            entity["text"].casefold()
            in "alice from paris bought a laptop from dell on monday. it broke & she is angry."
        )


def test_async_client_runs_a_task(server: RealServer) -> None:
    import asyncio

    async def go() -> llmos.sdk.tasks.TaskResult:
        async with llmos.AsyncClient(server.url, timeout=600) as c:
            return await c.tasks.classify("Where is my parcel?", ["shipping", "billing"], model=MODEL)

    r = asyncio.run(go())
    assert r.output["label"] in ("shipping", "billing") and valid(r.output, r.schema)


def test_nlu_answers_json_valid_against_its_schema(client: llmos.Client) -> None:
    nlu = NLU(client, MODEL)
    result = nlu.parse("I want to order Dracula by Bram Stoker")
    assert valid(result.raw, nlu.schema)
    assert result.intent in nlu.intents
    assert all(e.text.casefold() in "i want to order dracula by bram stoker" for e in result.entities)


def test_assistant_calls_the_tool_and_answers_from_its_result(client: llmos.Client) -> None:
    tools = default_tools()
    assistant = Assistant(client, MODEL, tools, max_tokens=40)
    cid = assistant.start(title="weather")
    turn = assistant.ask(cid, "What is the weather in Paris today?", tool_choice=force_tool("get_weather"))
    assert len(turn.tool_calls) == 1
    call = turn.tool_calls[0]
    assert call.name == "get_weather" and call.arguments is not None
    assert tools.get("get_weather").problems(call.arguments) == []
    assert "result" in call.result or "error" in call.result
    assert turn.reply
    # The tool's result went back to the model, and the whole turn is the conversation's memory.
    stored = client.conversations.get(cid).messages
    assert [m.role for m in stored] == ["system", "user", "assistant", "tool", "assistant"]
    assert stored[2].tool_calls and stored[2].tool_calls[0]["id"] == stored[3].tool_call_id == call.call_id
    assert (stored[3].content is not None and "result" in stored[3].content) or "error" in (
        stored[3].content or ""
    )
    assert stored[4].content == turn.reply

    second = assistant.ask(cid, "And what is 12 * 7?", tool_choice=force_tool("calculator"))
    assert len(second.tool_calls) == 1 and second.tool_calls[0].name == "calculator"
    assert tools.get("calculator").problems(second.tool_calls[0].arguments) == []
    assert client.conversations.get(cid).message_count == 9


def test_recommendations_come_from_the_catalog(client: llmos.Client) -> None:
    catalog = load_catalog()
    # minilm:l6 is not on this server: the recommender falls back to the chat model's embeddings.
    recommender = Recommender(client, MODEL, catalog, n_candidates=4, max_tokens=120)
    rec = recommender.recommend("a scary story with monsters", ["Frankenstein"], n=2)
    assert rec.embedding_model == MODEL
    assert 1 <= len(rec.picks) <= 2 and len(rec.candidates) == 4
    assert all(p.item.id in catalog and p.item in rec.candidates and p.reason for p in rec.picks)
    assert all(c.title != "Frankenstein" for c in rec.candidates)


def test_support_asks_for_the_title_then_quotes_the_catalog_price(
    client: llmos.Client, caplog: pytest.LogCaptureFixture
) -> None:
    catalog = load_catalog()
    bot = SupportBot(client, MODEL, catalog)
    cid = bot.start()
    caplog.set_level(logging.INFO, logger="llmos.apps")
    first = bot.respond(cid, "I want to order a novel")
    assert "NLU failed" not in caplog.text, "the NLU answer fits its token budget"
    assert first.stage == "awaiting_title" and "Which one" in first.text and first.item is None
    assert first.suggestions and all(s.id in catalog for s in first.suggestions)
    second = bot.respond(cid, "The first one, please")
    assert second.stage == "awaiting_confirmation" and second.item == first.suggestions[0]
    assert catalog.get(second.item.id).price_text in second.text
    third = bot.respond(cid, "yes")
    assert third.stage == "idle" and second.item.title in third.text
    stored = client.conversations.get(cid)
    assert [m.role for m in stored.messages][2:] == ["user", "assistant"] * 3
    assert stored.metadata["support"]["stage"] == "idle"
