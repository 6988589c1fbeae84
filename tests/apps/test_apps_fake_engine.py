"""The services' control flow over a real server whose engine is the deterministic fake (no
model: its lorem output is never JSON). The support flow must still ask for a title and quote
the catalog's price — through its rule and keyword fallbacks — and memory must persist."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

import llmos
from kernel.fakes import fake_kernel  # tests/ is on sys.path (rootdir-based imports)
from llmos.apps.catalog import load_catalog
from llmos.apps.dialogue import Assistant
from llmos.apps.nlu import NLU
from llmos.apps.structured_chat import AppError
from llmos.apps.support import GREETING, SupportBot
from llmos.config import load_config
from llmos.sdk import NotFoundError
from llmos.server import Lifecycle, create_app

MODEL = "fake:1"


@pytest.fixture
def client(tmp_path: Path, serve_app: Callable[..., str]) -> Iterator[llmos.Client]:
    """A real uvicorn server on a free loopback port, over a fake-engine kernel."""
    # The fake tokenizer spends a token per byte: give each sequence room for the schema hints.
    config = load_config(home=tmp_path / "home", n_slots=2, n_ctx=16384)
    kernel = fake_kernel(tmp_path, models=[MODEL], config=config)
    life = Lifecycle()
    url = serve_app(create_app(kernel, lifecycle=life), life)
    with llmos.Client(url) as c:
        yield c


def test_nlu_refuses_an_answer_that_is_not_json(client: llmos.Client) -> None:
    with pytest.raises(AppError):
        NLU(client, MODEL, max_tokens=20).parse("hello")


def test_support_flow_falls_back_to_rules_and_quotes_the_catalog_price(client: llmos.Client) -> None:
    catalog = load_catalog()
    bot = SupportBot(client, MODEL, catalog)
    bot.nlu.max_tokens = bot.recommender.max_tokens = 16
    cid = bot.start()
    first = bot.respond(cid, "I want to order a novel")
    assert first.stage == "awaiting_title" and "Which one" in first.text
    assert len(first.suggestions) == 2 and all(s.kind == "novel" for s in first.suggestions)
    unknown = bot.respond(cid, "hmm, something else entirely")
    assert unknown.stage == "awaiting_title" and "could not find" in unknown.text
    second = bot.respond(cid, "Dracula")
    assert second.stage == "awaiting_confirmation" and second.item is not None
    assert second.item.title == "Dracula" and "8.75 EUR" in second.text
    assert bot.respond(cid, "no thanks").stage == "idle"
    price = bot.respond(cid, "I'd like to buy Moby-Dick")
    assert price.item is not None and price.item.title == "Moby-Dick" and "11.50 EUR" in price.text
    stored = client.conversations.get(cid)
    assert stored.message_count == 2 + 2 * 5 and stored.metadata["support"]["item"] == price.item.id
    assert [m.content for m in stored.messages[:2] if m.role == "assistant"] == [GREETING]


@pytest.mark.parametrize(
    "complaint",
    [
        "I want a refund for my order",
        "The book I ordered arrived damaged",
        "I'd like to return Dracula and get my money back",
        "Can I speak to a human please",
    ],
)
def test_refunds_and_complaints_go_to_a_person_not_into_an_order(
    client: llmos.Client, complaint: str
) -> None:
    bot = SupportBot(client, MODEL)
    bot.nlu.max_tokens = bot.recommender.max_tokens = 16
    cid = bot.start()
    asked = bot.respond(cid, "I want to order a novel")
    assert asked.stage == "awaiting_title"
    reply = bot.respond(cid, complaint)  # even in the middle of an order
    assert reply.stage == "idle" and reply.item is None and reply.handoff is not None
    assert reply.handoff in reply.text and "person on our team" in reply.text
    again = bot.respond(cid, "and the invoice was wrong, I want to complain")
    assert again.handoff is not None and again.handoff != reply.handoff
    stored = client.conversations.get(cid).metadata
    assert [h["reference"] for h in stored["handoffs"]] == [reply.handoff, again.handoff]
    assert stored["handoffs"][0]["message"] == complaint and stored["support"]["stage"] == "idle"


def test_the_nlu_budget_holds_the_longest_answer_its_schema_allows(client: llmos.Client) -> None:
    full, support = NLU(client, MODEL), SupportBot(client, MODEL).nlu
    assert support.schema["properties"]["relations"]["maxItems"] == 0
    for nlu in (full, support):
        longest = {
            "intent": max(nlu.intents, key=len),
            "entities": [{"text": "x" * 30, "type": max(nlu.entity_types, key=len)}]
            * nlu.schema["properties"]["entities"]["maxItems"],
            "relations": [{"subject": "x" * 30, "relation": "x" * 20, "object": "x" * 30}]
            * nlu.schema["properties"]["relations"]["maxItems"],
        }
        assert len(json.dumps(longest, separators=(",", ":"))) < nlu.max_tokens
    assert support.max_tokens < full.max_tokens


def test_assistant_keeps_memory_per_conversation(client: llmos.Client) -> None:
    assistant = Assistant(client, MODEL, max_tokens=8, history_window=2)
    a, b = assistant.start(), assistant.start()
    assistant.ask(a, "hello", tool_choice="none")
    assistant.ask(a, "again", tool_choice="none")
    assistant.ask(b, "other", tool_choice="none")
    roles = [m.role for m in client.conversations.get(a).messages]
    assert roles == ["system", "user", "assistant", "user", "assistant"]
    assert client.conversations.get(b).message_count == 3
    assert {c.id for c in client.conversations.list()} >= {a, b}
    with pytest.raises(NotFoundError):
        assistant.ask("conv_missing", "hi")


def test_cli_apps_use_the_server(
    client: llmos.Client, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from typer.testing import CliRunner

    from llmos.cli.app import app

    monkeypatch.setenv("LLMOS_HOME", str(tmp_path / "cli-home"))
    monkeypatch.setenv("LLMOS_BASE_URL", client.base_url)
    monkeypatch.delenv("LLMOS_API_KEY", raising=False)
    runner = CliRunner()
    result = runner.invoke(app, ["apps", "support", "-m", MODEL, "--message", "I want to order a novel"])
    assert result.exit_code == 0, result.output
    assert "Which one would you like?" in result.output
    session = runner.invoke(app, ["apps", "support", "-m", MODEL], input="/bye\n")
    assert session.exit_code == 0, session.output
    assert GREETING in " ".join(session.stdout.split()) and "/bye to leave" in session.stderr
    assert "could not find" not in session.output, "/bye is not a title"
    result = runner.invoke(app, ["apps", "nlu", "-m", MODEL, "hello"])
    assert result.exit_code == 12 and "nlu answer" in result.output
    result = runner.invoke(app, ["apps", "chat", "-m", "missing:1", "--message", "hi"])
    assert result.exit_code == 3, result.output
