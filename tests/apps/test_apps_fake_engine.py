"""The services' control flow over a real server whose engine is the deterministic fake (no
model: its lorem output is never JSON). The support flow must still ask for a title and quote
the catalog's price — through its rule and keyword fallbacks — and memory must persist."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

import llmos
from kernel.fakes import fake_kernel  # tests/ is on sys.path (rootdir-based imports)
from llmos.apps.catalog import load_catalog
from llmos.apps.dialogue import Assistant
from llmos.apps.nlu import NLU
from llmos.apps.structured_chat import AppError
from llmos.apps.support import SupportBot
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
    assert stored.message_count == 1 + 2 * 5 and stored.metadata["support"]["item"] == price.item.id


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
    result = runner.invoke(app, ["apps", "nlu", "-m", MODEL, "hello"])
    assert result.exit_code == 12 and "nlu answer" in result.output
    result = runner.invoke(app, ["apps", "chat", "-m", "missing:1", "--message", "hi"])
    assert result.exit_code == 3, result.output
