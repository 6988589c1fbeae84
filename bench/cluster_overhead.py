"""The router's and the Ray channel's overhead against a single-machine core, at the same load.

The same engine core (the fake engine with a fixed step time, so the engine itself costs no CPU
and any difference is the transport's and the router's) serves the same closed-loop load:

* ``process``: one core in a child process, the single-machine server's way (``ProcessHost``);
* ``ray``: one replica in a Ray actor behind a :class:`~llmos.kernel.replicas.ReplicaSet` (the
  prefix router, the in-order push and batched pull channel), on a local Ray head.

``--clients`` requests stay in flight (each ``--tokens`` long, prompts sharing a 256-token system
prompt); throughput is generated tokens per second of wall time after a warm-up. Each
configuration runs ``--rounds`` times, alternating, and the median is reported.

Usage (repository root)::

    nice -n 19 .venv/bin/python bench/cluster_overhead.py                 # ~3 minutes
    nice -n 19 .venv/bin/python bench/cluster_overhead.py --step-ms 50 --rounds 3

Writes ``bench/results/cluster_overhead.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from llmos.config import ClusterConfig, SchedulerConfig
from llmos.core import CoreClient, CoreSpec, ProcessHost
from llmos.engine.base import LoadSpec, SamplingParams, SequenceSpec
from llmos.engine.fake import N_VOCAB
from llmos.kernel.replicas import ReplicaSet
from llmos.scheduler import GenerationRequest, RequestClass

RESULTS = Path(__file__).resolve().parent / "results"
SYSTEM = tuple(7 + i % (N_VOCAB - 7) for i in range(256))


def spec(slots: int, step_s: float) -> CoreSpec:
    return CoreSpec(
        backend="fake",
        load=LoadSpec(
            model_path=Path("/nonexistent/fake.gguf"),
            n_ctx=65536,
            n_slots=slots,
            extra={"step_cost_s": step_s},
        ),
        model="fake:bench",
        scheduler=SchedulerConfig(max_queue=4096, max_queue_per_tenant=4096),
    )


async def drive(submit: Any, clients: int, tokens: int, seconds: float, warmup: float) -> float:
    counter = [0]
    stop = asyncio.Event()
    measuring = [False]
    n = [0]

    async def client(c: int) -> None:
        while not stop.is_set():
            n[0] += 1
            rid = f"c{c}-{n[0]}"
            params = SamplingParams(temperature=0.0, max_tokens=tokens, ignore_eos=True)
            req = GenerationRequest(
                rid,
                SequenceSpec(rid, (*SYSTEM, c % N_VOCAB, n[0] % N_VOCAB), params),
                RequestClass(tenant="t"),
            )
            async for out in submit(req):
                if measuring[0]:
                    counter[0] += len(out.token_ids)

    tasks = [asyncio.create_task(client(c)) for c in range(clients)]
    await asyncio.sleep(warmup)
    measuring[0] = True
    t0 = time.perf_counter()
    await asyncio.sleep(seconds)
    measuring[0] = False
    elapsed = time.perf_counter() - t0
    stop.set()
    await asyncio.gather(*tasks)
    return counter[0] / elapsed


async def run_process(args: argparse.Namespace) -> float:
    core = CoreClient(ProcessHost(), spec(args.slots, args.step_ms / 1000))
    await core.start()
    try:
        return await drive(core.submit, args.clients, args.tokens, args.seconds, args.warmup)
    finally:
        await core.close()


async def run_ray(args: argparse.Namespace) -> float:
    from llmos.cluster.ray_host import RayHost, ReplicaResources

    s = spec(args.slots, args.step_ms / 1000)

    def make_core(name: str) -> CoreClient:
        host = RayHost(
            s.load.model_path,
            resources=ReplicaResources(num_cpus=1),
            blob_root=Path("/tmp/llmos-bench-blobs"),
            name=name,
        )
        return CoreClient(host, s, on_dead=lambda why: rs.replica_died(name, why))

    rs = ReplicaSet("fake:bench", make_core, min_replicas=1, interval_s=3600)
    await rs.start()
    try:
        return await drive(rs.submit, args.clients, args.tokens, args.seconds, args.warmup)
    finally:
        await rs.close()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clients", type=int, default=16)
    ap.add_argument("--slots", type=int, default=16)
    ap.add_argument("--tokens", type=int, default=64)
    ap.add_argument("--step-ms", type=float, default=20.0)
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--warmup", type=float, default=3.0)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    from llmos.cluster import runtime

    runtime.connect(ClusterConfig(address="auto", head_cpus=2))
    results: dict[str, list[float]] = {"process": [], "ray": []}
    try:
        for _ in range(args.rounds):
            results["process"].append(asyncio.run(run_process(args)))
            results["ray"].append(asyncio.run(run_ray(args)))
            print({k: [round(x, 1) for x in v] for k, v in results.items()}, flush=True)
    finally:
        runtime.disconnect()
    med = {k: statistics.median(v) for k, v in results.items()}
    out = {
        "command": "bench/cluster_overhead.py " + " ".join(sys.argv[1:]),
        "settings": vars(args),
        "loadavg_at_end": os.getloadavg(),
        "tokens_per_s": results,
        "median_tokens_per_s": med,
        "ray_relative_to_process": med["ray"] / med["process"],
    }
    print(json.dumps(out, indent=1))
    (RESULTS / "cluster_overhead.json").write_text(json.dumps(out, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
