"""The CLI through the SDK against a running server (a fake-engine kernel behind uvicorn)."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from llmos.cli.app import app


@pytest.fixture
def cli(live_url: str, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.setenv("LLMOS_BASE_URL", live_url)
    return CliRunner()


def test_run_streams_an_answer_through_the_server(cli: CliRunner) -> None:
    r = cli.invoke(app, ["run", "fake:1", "hello", "--max-tokens", "5", "--temperature", "0"])
    assert r.exit_code == 0, r.output
    assert len(r.stdout.rstrip("\n")) == 5


def test_interactive_chat_keeps_history_until_bye(cli: CliRunner) -> None:
    r = cli.invoke(app, ["run", "fake:1", "--max-tokens", "4"], input="hi\nand then?\n/bye\nnever sent\n")
    assert r.exit_code == 0, r.output
    assert r.stdout.count(">>> ") == 3
    answers = [line.removeprefix(">>> ") for line in r.stdout.splitlines() if line.strip() not in ("", ">>>")]
    assert len(answers) == 2 and all(len(a) == 4 for a in answers)


def test_load_ps_unload_and_registry_commands_use_the_server(cli: CliRunner) -> None:
    r = cli.invoke(app, ["load", "cat:1"])
    assert r.exit_code == 0, r.output
    ps = cli.invoke(app, ["ps"])
    assert "cat:1" in ps.stdout and "ready" in ps.stdout and "WAIT PRED/OBS" in ps.stdout
    assert "budget" in ps.stdout and "RAM" in ps.stdout
    assert any("cores" in line for line in ps.stdout.splitlines()), "the machine's inventory"
    assert "training: 0 running, 0 queued" in ps.stdout
    listed = cli.invoke(app, ["list"])
    assert "fake:1" in listed.stdout and "cat:1" in listed.stdout, "the server's registry (a memory fake)"
    assert "test" in cli.invoke(app, ["show", "cat:1"]).stdout
    assert cli.invoke(app, ["pin", "cat:1"]).stdout.startswith("pinned cat:1")
    assert "pinned" in cli.invoke(app, ["ps"]).stdout
    assert cli.invoke(app, ["unpin", "cat:1"]).stdout.startswith("unpinned cat:1")
    assert "pinned" not in cli.invoke(app, ["ps"]).stdout
    assert cli.invoke(app, ["cp", "cat:1", "dog:1"]).exit_code == 0
    assert cli.invoke(app, ["unload", "cat:1"]).stdout.startswith("unloaded cat:1")
    assert cli.invoke(app, ["rm", "dog:1"]).exit_code == 0
    assert "dog:1" not in cli.invoke(app, ["list"]).stdout


def test_errors_exit_non_zero_with_the_servers_message(cli: CliRunner) -> None:
    r = cli.invoke(app, ["run", "ghost:1", "x"])
    assert r.exit_code == 3
    assert "ghost:1" in r.stderr
    assert cli.invoke(app, ["unload", "fake:1"]).exit_code == 3


def test_runtime_commands_need_a_server(monkeypatch: pytest.MonkeyPatch) -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("LLMOS_BASE_URL", f"http://127.0.0.1:{port}")
    r = CliRunner().invoke(app, ["ps"])
    assert r.exit_code == 6 and "llmos serve" in r.stderr
