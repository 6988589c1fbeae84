"""How long ``/health`` waits while the heaviest accepted chat request is being planned (issue 16).

A real uvicorn server over fake engines, in a process of its own (planning is the server's own
CPU work: the model does not matter). Clients send chat requests with the most tools a request
may carry (128, each with a parameters schema) while a prober asks ``/health`` every 10 ms; the
probe latencies are reported, with a baseline of the same probes and no chat traffic. Two runs:
as served (planning in a worker thread), and with planning forced back onto the event loop
(what the server did before) for comparison.

    .venv/bin/python bench/event_loop_stall.py [--seconds 20] [--clients 2] [--out bench/results]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

import llmos.kernel.kernel as kernel_module
from kernel.fakes import fake_kernel
from llmos.server import Lifecycle, create_app
from llmos.server.runner import server_for
from llmos.server.schemas.chat import MAX_TOOLS
from server.workloads import tools

RESULTS = Path(__file__).parent / "results"


async def measure(url: str, seconds: float, clients: int) -> dict[str, Any]:
    """Probe /health for ``seconds`` while ``clients`` send the heaviest chat in a loop."""
    body = {
        "model": "fake:1",
        "messages": [{"role": "user", "content": "Weather in Oslo?"}],
        "tools": tools(),
        "max_tokens": 4,
    }
    stop = time.monotonic() + seconds
    planned = 0
    probes: list[float] = []

    async with httpx.AsyncClient(base_url=url, timeout=120) as c:

        async def client() -> None:
            nonlocal planned
            while time.monotonic() < stop:
                await c.post("/v1/chat/completions", json=body)
                planned += 1

        async def prober() -> None:
            while time.monotonic() < stop:
                t0 = time.perf_counter()
                r = await c.get("/health")
                probes.append(time.perf_counter() - t0)
                assert r.status_code == 200
                await asyncio.sleep(0.01)

        await asyncio.gather(prober(), *(client() for _ in range(clients)))
    probes.sort()
    return {
        "chat_requests": planned,
        "probes": len(probes),
        "health_p50_ms": round(1000 * statistics.median(probes), 1),
        "health_p99_ms": round(1000 * probes[int(0.99 * (len(probes) - 1))], 1),
        "health_max_ms": round(1000 * probes[-1], 1),
    }


def serve(port: int, on_loop: bool) -> None:
    """The server process: fake engines, planning on or off the event loop."""
    if on_loop:  # what the server did before: plan_chat on the event loop
        real_to_thread = asyncio.to_thread

        async def inline(fn: Any, *args: Any, **kwargs: Any) -> Any:
            if fn is kernel_module.plan_chat:
                return fn(*args, **kwargs)
            return await real_to_thread(fn, *args, **kwargs)

        asyncio.to_thread = inline  # the kernel plans through asyncio.to_thread
    with tempfile.TemporaryDirectory() as tmp:
        life = Lifecycle()
        app = create_app(fake_kernel(Path(tmp)), lifecycle=life)
        server_for(app, life, host="127.0.0.1", port=port, drain_timeout=1, log_level="warning").run()


def run(on_loop: bool, seconds: float, clients: int) -> dict[str, Any]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    cmd = [sys.executable, __file__, "--serve", str(port), *(["--on-loop"] if on_loop else [])]
    proc = subprocess.Popen(cmd)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(3000):
            try:
                if httpx.get(url + "/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.02)
        idle = asyncio.run(measure(url, seconds / 3, 0))
        busy = asyncio.run(measure(url, seconds, clients))
        return {"idle": idle, "planning": busy}
    finally:
        proc.terminate()
        proc.wait(30)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--clients", type=int, default=2)
    ap.add_argument("--out", type=Path, default=RESULTS)
    ap.add_argument("--serve", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--on-loop", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.serve:
        serve(args.serve, args.on_loop)
        return
    results = {
        "command": " ".join(["python", "bench/event_loop_stall.py", *sys.argv[1:]]),
        "load_average_at_start": os.getloadavg(),
        "tools_per_request": MAX_TOOLS,
        "off_the_loop": run(False, args.seconds, args.clients),
        "on_the_loop_as_before": run(True, args.seconds, args.clients),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "event_loop_stall.json").write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
