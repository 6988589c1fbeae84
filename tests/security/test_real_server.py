"""The real server (``llmos serve`` in a subprocess, uvicorn, SQLite, the llama.cpp worker on
smollm2) with LLMOS_AUTH=required: the first admin key from the CLI with no server, a tenant key
used by the official ``openai`` client, and not one key in the server's whole log (access log
at DEBUG included)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import openai
import pytest

pytestmark = pytest.mark.integration


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _run_cli(env: dict[str, str], *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "llmos", *args], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_keys_on_a_real_server(tmp_path: Path, smollm2_gguf: Path) -> None:
    home = tmp_path / "home"
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    env = {**os.environ, "LLMOS_HOME": str(home), "LLMOS_AUTH": "required", "LLMOS_LOG_LEVEL": "DEBUG"}
    env.pop("LLMOS_DATABASE_URL", None)
    env.pop("LLMOS_API_KEY", None)
    env["LLMOS_BASE_URL"] = f"http://127.0.0.1:{_free_port()}"  # no server yet: the CLI writes the database
    admin_key = _run_cli(env, "keys", "create", "--admin")
    assert admin_key.startswith("sk-llmos-")

    log = tmp_path / "server.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "llmos", "serve", "--port", str(port), "--no-default-model"],
            env={**env, "LLMOS_N_SLOTS": "2", "LLMOS_N_CTX": "1024"},
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                if httpx.get(url + "/health", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert proc.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.1)
        admin = {"authorization": f"Bearer {admin_key}"}
        assert httpx.get(url + "/api/models", timeout=10).status_code == 401
        r = httpx.post(
            url + "/api/import",
            json={"path": str(smollm2_gguf), "model": "smollm2:135m", "stream": False},
            headers=admin,
            timeout=300,
        )
        assert r.status_code == 200, r.text
        assert (
            httpx.post(url + "/api/tenants", json={"name": "acme"}, headers=admin, timeout=10).status_code
            == 201
        )
        made = httpx.post(
            url + "/api/keys", json={"tenant": "acme", "models": ["smollm2:*"]}, headers=admin, timeout=10
        ).json()
        key = made["key"]

        client = openai.OpenAI(base_url=url + "/v1", api_key=key, max_retries=0, timeout=300)
        reply = client.chat.completions.create(
            model="smollm2:135m", messages=[{"role": "user", "content": "Say hi."}], max_tokens=4
        )
        assert reply.usage is not None and reply.usage.completion_tokens > 0
        with pytest.raises(openai.AuthenticationError):
            openai.OpenAI(base_url=url + "/v1", api_key=key + "x", max_retries=0).models.list()
        # A key in a query string lands in uvicorn's access log line: it must come out redacted.
        httpx.get(url + "/v1/models", params={"api_key": key}, headers={"authorization": f"Bearer {key}"})

        usage = httpx.get(url + "/api/usage", params={"group_by": "tenant,model"}, headers=admin, timeout=10)
        assert {(u["tenant"], u["model"], u["requests"]) for u in usage.json()["data"]} == {
            ("acme", "smollm2:135m", 1)
        }
        revoked = httpx.delete(url + f"/api/keys/{made['id']}", headers=admin, timeout=10)
        assert revoked.status_code == 200
        with pytest.raises(openai.AuthenticationError):
            client.models.list()
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
    text = log.read_text(errors="replace")
    assert "GET /v1/models" in text, text[-3000:]  # the access log was written
    for secret in (admin_key, key):
        assert secret not in text and secret[17:] not in text
