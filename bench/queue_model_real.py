"""The queue model on the real engine: its load-aware prediction beside the observed mean wait,
several seeds per load (issue 20, point 3; ``bench/queue_model.py`` is the simulated sweep).

An engine core (scheduler and llama.cpp engine in one loop, its own process, FCFS, ``--slots``
slots) serves SmolLM2-135M requests of ``--max-tokens`` tokens (``scheduler_policies.py``'s
requests). Capacity is measured first (closed loop, every slot busy); then for every seed and
load ρ a fresh core gets ``--requests`` Poisson arrivals at λ = ρ × capacity. After the run the
core's own queue model is read (``QueueModelStats``: step time per batch size, steps per
request and their variability, all learned online from that run) and its load-aware prediction
is taken at the λ that was offered (what an autoscaler asks with its own λ), beside the live one
(λ from the model's last 256 arrivals) and the observed mean wait (submit → slot, from the
scheduler's own events, over the whole run less its first ``--skip`` share: the queue starts
empty, and near saturation it takes thousands of arrivals to reach its stationary mean).

    .venv/bin/python bench/queue_model_real.py [--requests 250] [--seeds 1 2] [--loads 0.2 0.4 0.6 0.8 0.9]

Writes ``bench/results/queue_model_real_engine{--tag}.json`` and prints a Markdown table.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from llmos.scheduler import SchedulerEvent
from llmos.scheduler.birth_death import load_aware_wait
from scheduler_policies import DEFAULT_MODEL, RESULTS, Bench, measure_capacity, open_bench


async def one_run(b: Bench, lam: float, n: int, seed: int, skip: float) -> dict[str, Any]:
    rng = random.Random(seed)
    queued: dict[str, float] = {}
    waits: list[tuple[str, float]] = []

    def on_event(e: SchedulerEvent) -> None:  # the scheduler's own clock: submit -> slot
        if e.kind == "queue":
            queued[e.request_id] = e.at
        elif e.kind == "admit" and e.request_id in queued:
            waits.append((e.request_id, e.at - queued.pop(e.request_id)))

    sched = await b.scheduler("fcfs", on_event=on_event, max_queue=4096, max_queue_per_tenant=4096)
    await b.request(sched, "warmup", 5)  # first decode allocates buffers
    jobs = []
    t0 = time.monotonic()
    for _ in range(n):
        jobs.append(asyncio.create_task(b.request(sched, "q", 5)))
        await asyncio.sleep(rng.expovariate(lam))
    offered = n / (time.monotonic() - t0)
    await asyncio.gather(*jobs)
    est = (await sched.stats()).queue_model
    await sched.close()
    predicted = None
    if est.steps_per_request and est.step_time_s:
        rates = [k / (est.steps_per_request * t) for k, t in enumerate(est.step_time_s, start=1)]
        predicted = load_aware_wait(offered, rates, est.steps_scv)
    run = [w for rid, w in waits if rid.startswith("q-")]
    kept = run[int(skip * len(run)) :]  # the queue starts empty: its first arrivals wait too little
    return {
        "seed": seed,
        "lambda": lam,
        "offered": offered,
        "predicted_at_offered_s": predicted,
        "run_wait_mean_s": statistics.fmean(kept) if kept else None,
        "run_waits_counted": len(kept),
        **asdict(est),
    }


async def sweep(b: Bench, args: argparse.Namespace) -> dict[str, Any]:
    cap = await measure_capacity(b, args.capacity_s, warmup_s=2.0)
    print(f"capacity {cap:.2f} req/s on {b.load.n_slots} slots", file=sys.stderr)
    runs = []
    for seed in args.seeds:
        for rho in args.loads:
            r = await one_run(b, rho * cap, args.requests, seed, args.skip)
            r["rho_target"] = rho
            runs.append(r)
            print(
                f"seed {seed} rho {rho}: offered {r['offered']:.2f}/s, observed {r['run_wait_mean_s']} "
                f"(last 256: {r['observed_wait_mean_s']}), "
                f"predicted {r['predicted_at_offered_s']}, live {r['predicted_wait_s']}",
                file=sys.stderr,
                flush=True,
            )
    return {"capacity_req_s": cap, "runs": runs}


def table(res: dict[str, Any]) -> str:
    lines = [
        "| ρ target | seeds | observed mean wait (per seed) | load-aware at offered λ (per seed) | mean observed | mean predicted | error |",
        "| ---: | ---: | --- | --- | ---: | ---: | ---: |",
    ]
    by_rho: dict[float, list[dict[str, Any]]] = {}
    for r in res["runs"]:
        by_rho.setdefault(r["rho_target"], []).append(r)
    for rho, rs in sorted(by_rho.items()):
        obs = [r.get("run_wait_mean_s", r["observed_wait_mean_s"]) or 0.0 for r in rs]
        pred = [r["predicted_at_offered_s"] or 0.0 for r in rs]
        mo, mp = statistics.fmean(obs), statistics.fmean(pred)
        err = f"{mp / mo - 1:+.0%}" if mo > 0 else "–"
        fmt = ", ".join(f"{x * 1000:.0f}" for x in obs)
        fmp = ", ".join(f"{x * 1000:.0f}" for x in pred)
        lines.append(
            f"| {rho} | {len(rs)} | {fmt} ms | {fmp} ms | {mo * 1000:.0f} ms | {mp * 1000:.0f} ms | {err} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", type=Path, default=DEFAULT_MODEL)
    ap.add_argument("--out", type=Path, default=RESULTS)
    ap.add_argument("--slots", type=int, default=4)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--max-tokens", type=int, default=32)
    ap.add_argument("--requests", type=int, default=250)
    ap.add_argument("--seeds", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--loads", type=float, nargs="+", default=[0.2, 0.4, 0.6, 0.8, 0.9])
    ap.add_argument("--capacity-s", type=float, default=20.0)
    ap.add_argument(
        "--skip", type=float, default=0.1, help="share of a run's first requests left out of its mean wait"
    )
    ap.add_argument("--tag", default="", help="write queue_model_real_engine{tag}.json")
    args = ap.parse_args(argv)
    derived = tempfile.TemporaryDirectory(prefix="llmos-bench-")
    bench = open_bench(args.model, args.slots, args.threads, args.max_tokens, Path(derived.name), quick=False)
    engine = bench.engine
    started = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    res = asyncio.run(sweep(bench, args))
    engine.unload()
    derived.cleanup()
    res.update(
        command=" ".join(["bench/queue_model_real.py", *(argv if argv is not None else sys.argv[1:])]),
        when_utc=started,
        loadavg_at_end=os.getloadavg(),
        slots=args.slots,
        max_tokens=args.max_tokens,
        requests=args.requests,
    )
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"queue_model_real_engine{args.tag}.json").write_text(json.dumps(res, indent=2))
    print(table(res))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
