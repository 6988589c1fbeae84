"""``llmos run`` with no server: the model runs in this process through the kernel (real
registry and SQLite; the engine is the fake backend in its worker process, or llama.cpp)."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
from typer.testing import CliRunner

from llmos.cli.app import app

MODEL = "smollm2:135m"


@pytest.fixture
def no_server(llmos_home: Path, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("LLMOS_BASE_URL", f"http://127.0.0.1:{port}")
    monkeypatch.setenv("LLMOS_N_SLOTS", "2")
    monkeypatch.setenv("LLMOS_N_CTX", "2048")
    return CliRunner()


def _import(cli: CliRunner, gguf: Path) -> None:
    """Register ``gguf`` in the local registry (``llmos import`` needs a server; ``run`` does not)."""
    from llmos.config import load_config
    from llmos.registry import open_registry

    open_registry(load_config()).import_file(gguf, MODEL)


def test_run_in_process_with_the_fake_backend(
    no_server: CliRunner, smollm2_gguf: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LLMOS_ENGINE_BACKEND", "fake")
    _import(no_server, smollm2_gguf)
    r = no_server.invoke(app, ["run", MODEL, "hello", "--max-tokens", "6"])
    assert r.exit_code == 0, r.output
    assert len(r.stdout.rstrip("\n")) == 6
    chat = no_server.invoke(app, ["run", MODEL, "--max-tokens", "3"], input="one\ntwo\n/bye\n")
    assert chat.exit_code == 0, chat.output
    answers = [
        line.removeprefix(">>> ") for line in chat.stdout.splitlines() if line.removeprefix(">>> ").strip()
    ]
    assert [len(a) for a in answers] == [3, 3]


def test_run_unknown_model_fails_cleanly(no_server: CliRunner, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LLMOS_ENGINE_BACKEND", "fake")
    r = no_server.invoke(app, ["run", "ghost:1", "hi"])
    assert r.exit_code == 3 and "not in the catalog" in r.stderr


@pytest.mark.integration
def test_run_in_process_on_llama_cpp(no_server: CliRunner, smollm2_gguf: Path) -> None:
    _import(no_server, smollm2_gguf)
    r = no_server.invoke(
        app, ["run", MODEL, "What is the capital of France?", "--max-tokens", "8", "--temperature", "0"]
    )
    assert r.exit_code == 0, r.output
    assert r.stdout.strip()
