"""A real llmos server (uvicorn subprocess, real SQLite, real llama.cpp worker) with
smollm2:135m imported, for the application and task integration tests.

Two slots of 2048 tokens: the apps send schema hints and tool instructions that do not fit the
256-token slots of the OpenAI integration server.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx

from server.test_integration_openai import RealServer, _free_port, _wait_ready, stop_server

MODEL = "smollm2:135m"

__all__ = ["MODEL", "RealServer", "start_real_server", "stop_server"]


def start_real_server(home: Path, gguf: Path) -> RealServer:
    port = _free_port()
    env = {
        **os.environ,
        "LLMOS_HOME": str(home),
        "LLMOS_N_SLOTS": "2",
        "LLMOS_N_CTX": "4096",
        "LLMOS_N_THREADS": "2",
    }
    env.pop("LLMOS_DATABASE_URL", None)
    env.pop("LLMOS_API_KEY", None)
    home.mkdir(parents=True, exist_ok=True)
    log = home.parent / f"server-{port}.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "llmos", "serve", "--port", str(port), "--no-default-model"],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    server = RealServer(f"http://127.0.0.1:{port}", proc, log, home)
    try:
        _wait_ready(server.url, proc, "/health")
        r = httpx.post(
            server.url + "/api/import",
            json={"path": str(gguf), "model": MODEL, "stream": False},
            timeout=300,
        )
        if r.status_code != 200:
            raise RuntimeError(r.text)
    except Exception:
        stop_server(server)
        raise RuntimeError(server.logs()) from None
    return server
