"""Scheduler benchmarks on the real llama.cpp engine with SmolLM2-135M (issue 5, point 8).

Drives an engine core (:mod:`llmos.core`: the scheduler and :class:`LlamaCppEngine` in one loop,
in a process of its own, as the server runs them) through its client (no HTTP), with asyncio
clients, and writes JSON results and PNG plots under ``bench/results/``:

* ``priority``: median end-to-end latency of ``priority`` requests (urgency 8) on an idle model
  vs. a model saturated by ``flex`` clients (urgency 2), under the ``tiered`` (default),
  ``priority`` and ``fcfs`` policies. Target: saturated/idle ≤ 1.5 under ``tiered`` and ``priority``.
* ``fairness``: tenant A runs 10× as many concurrent closed-loop clients as tenant B (10× the
  request rate); B's share of generated tokens under ``tiered``, ``fair`` (target ≥ 45 %) and
  ``fcfs``.
* ``queue``: Poisson arrivals at 0.2 … 0.95 of measured capacity; the queue model's predicted
  mean wait (M/M/c, M/G/1) beside the observed mean and p95.

Usage (from the repository root)::

    .venv/bin/python bench/scheduler_policies.py                   # everything (~12 minutes)
    .venv/bin/python bench/scheduler_policies.py --only fairness   # one experiment
    .venv/bin/python bench/scheduler_policies.py --quick           # a smoke run, seconds

The model defaults to the test cache (``~/.cache/llmos-tests/SmolLM2-135M-Instruct.Q4_1.gguf``,
fetched by ``pytest tests/engine``); pass ``--model`` otherwise.
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
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from llmos.config import SchedulerConfig
from llmos.core import CoreClient, CoreSpec, ProcessHost
from llmos.engine.base import Engine, LoadSpec, SamplingParams, SequenceSpec
from llmos.errors import Overloaded, RateLimited
from llmos.scheduler import GenerationRequest, RequestClass, SchedulerEvent

DEFAULT_MODEL = Path.home() / ".cache" / "llmos-tests" / "SmolLM2-135M-Instruct.Q4_1.gguf"
RESULTS = Path(__file__).parent / "results"
FLEX, PRIORITY = 2, 8
PRIORITY_POLICIES = ("tiered", "priority", "fcfs")
FAIRNESS_POLICIES = ("tiered", "fair", "fcfs")


@dataclass
class Done:
    request_id: str
    tenant: str
    urgency: int
    submitted: float
    first_token: float | None
    finished: float
    tokens: int
    rejected: int

    @property
    def latency(self) -> float:
        return self.finished - self.submitted


def open_bench(
    model: Path, slots: int, threads: int, max_tokens: int, derived: Path, *, quick: bool
) -> Bench:
    """A :class:`Bench` over ``model`` loaded here (to render and tokenize prompts) with the load
    spec every core of the run gets: ``slots`` slots, ``threads`` threads, 4,096 KV cells, one CPU
    re-encoding of the weights under ``derived`` for all of them."""
    from llmos.engine.llamacpp import LlamaCppEngine

    load = LoadSpec(
        model_path=model, n_ctx=4096, n_slots=slots, n_batch=512, n_threads=threads, derived_dir=derived
    )
    engine = LlamaCppEngine()
    engine.load(load)
    return Bench(engine, load, max_tokens=max_tokens, quick=quick)


class Bench:
    def __init__(self, engine: Engine, load: LoadSpec, *, max_tokens: int, quick: bool) -> None:
        self.engine = engine
        """Renders and tokenizes the prompts (the cores load their own copy of the model)."""
        self.load = load
        self.max_tokens = max_tokens
        self.quick = quick
        self._n = 0
        self._prompts: dict[int, tuple[int, ...]] = {}

    def prompt(self, i: int) -> tuple[int, ...]:
        k = i % 16
        if k not in self._prompts:
            text = self.engine.render_chat(
                [{"role": "user", "content": f"Tell me fact number {k} about the sea."}]
            )
            self._prompts[k] = tuple(self.engine.tokenize(text))
        return self._prompts[k]

    async def scheduler(
        self, policy: str, *, on_event: Callable[[SchedulerEvent], None] | None = None, **cfg: Any
    ) -> CoreClient:
        """A fresh engine core scheduling with ``policy``, started; ``on_event`` hears its
        scheduler's events."""
        config = SchedulerConfig(policy=policy, **cfg)  # type: ignore[arg-type]
        client = CoreClient(
            ProcessHost(), CoreSpec("llamacpp", self.load, "smollm2:135m", config), on_event=on_event
        )
        await client.start()
        return client

    async def request(self, sched: CoreClient, tenant: str, urgency: int) -> Done:
        self._n += 1
        rid = f"{tenant}-{self._n}"
        params = SamplingParams(temperature=0.0, max_tokens=self.max_tokens, ignore_eos=True)
        req = GenerationRequest(
            request_id=rid,
            spec=SequenceSpec(seq_id=rid, prompt=self.prompt(self._n), params=params),
            cls=RequestClass(tenant=tenant, urgency=urgency),
        )
        t0 = time.monotonic()
        rejected = 0
        while True:
            try:
                handle = sched.submit(req)
                break
            except (RateLimited, Overloaded):
                rejected += 1
                await asyncio.sleep(0.05)
        first: float | None = None
        tokens = 0
        async for out in handle:
            if out.token_ids and first is None:
                first = time.monotonic()
            tokens += len(out.token_ids)
        return Done(rid, tenant, urgency, t0, first, time.monotonic(), tokens, rejected)

    async def closed_loop(self, sched: CoreClient, tenant: str, urgency: int, sink: list[Done]) -> None:
        while True:
            sink.append(await self.request(sched, tenant, urgency))


async def _cancel(tasks: list[asyncio.Task[None]]) -> None:
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


# -- priority --------------------------------------------------------------------------------


async def bench_priority(b: Bench) -> dict[str, Any]:
    probes = 4 if b.quick else 12
    flex_clients = 8 if b.quick else 16
    out: dict[str, Any] = {"probes": probes, "flex_clients": flex_clients}
    for policy in PRIORITY_POLICIES:
        sched = await b.scheduler(policy)
        await b.request(sched, "warmup", PRIORITY)  # first decode allocates buffers: not a latency
        idle = [(await b.request(sched, "probe", PRIORITY)).latency for _ in range(probes)]
        background: list[Done] = []
        tasks = [
            asyncio.create_task(b.closed_loop(sched, "flex", FLEX, background)) for _ in range(flex_clients)
        ]
        await asyncio.sleep(1.0 if b.quick else 3.0)
        busy = []
        for _ in range(probes):
            busy.append((await b.request(sched, "probe", PRIORITY)).latency)
            await asyncio.sleep(0.2)
        snap = await sched.stats()
        await _cancel(tasks)
        await sched.close()
        out[policy] = {
            "idle_median_s": statistics.median(idle),
            "saturated_median_s": statistics.median(busy),
            "ratio": statistics.median(busy) / statistics.median(idle),
            "idle_s": idle,
            "saturated_s": busy,
            "flex_completed": len(background),
            "preemptions": snap.preemptions,
        }
        print(
            f"priority/{policy}: idle {out[policy]['idle_median_s']:.3f}s saturated "
            f"{out[policy]['saturated_median_s']:.3f}s ratio {out[policy]['ratio']:.2f}",
            file=sys.stderr,
        )
    return out


# -- fairness --------------------------------------------------------------------------------


async def bench_fairness(b: Bench) -> dict[str, Any]:
    a_clients, b_clients = (20, 2) if b.quick else (40, 4)
    seconds = 8.0 if b.quick else 40.0
    out: dict[str, Any] = {"a_clients": a_clients, "b_clients": b_clients, "seconds": seconds}
    for policy in FAIRNESS_POLICIES:
        # Queues large enough that admission control does not equalise the tenants by itself.
        sched = await b.scheduler(policy, max_queue=256, max_queue_per_tenant=256)
        sink: list[Done] = []
        tasks = [asyncio.create_task(b.closed_loop(sched, "A", 5, sink)) for _ in range(a_clients)]
        tasks += [asyncio.create_task(b.closed_loop(sched, "B", 5, sink)) for _ in range(b_clients)]
        await asyncio.sleep(2.0)  # warm-up: the queue fills
        start = {t.tenant: t.output_tokens for t in (await sched.stats()).tenants}
        series: list[tuple[float, int, int]] = []
        t0 = time.monotonic()
        while time.monotonic() - t0 < seconds:
            await asyncio.sleep(1.0)
            now = {t.tenant: t.output_tokens for t in (await sched.stats()).tenants}
            series.append((time.monotonic() - t0, now["A"] - start.get("A", 0), now["B"] - start.get("B", 0)))
        await _cancel(tasks)
        await sched.close()
        _, a_tok, b_tok = series[-1]
        out[policy] = {
            "a_tokens": a_tok,
            "b_tokens": b_tok,
            "b_share": b_tok / max(1, a_tok + b_tok),
            "series": series,
        }
        print(
            f"fairness/{policy}: B share {out[policy]['b_share']:.3f} (A {a_tok}, B {b_tok} tokens)",
            file=sys.stderr,
        )
    return out


# -- queueing model --------------------------------------------------------------------------


async def measure_capacity(b: Bench, seconds: float, *, warmup_s: float = 1.0) -> float:
    """Requests per second with every slot busy: twice as many closed-loop clients as slots, on a
    fresh FCFS core, counted over ``seconds`` after ``warmup_s``."""
    sched = await b.scheduler("fcfs")
    sink: list[Done] = []
    tasks = [asyncio.create_task(b.closed_loop(sched, "cal", 5, sink)) for _ in range(2 * b.load.n_slots)]
    await asyncio.sleep(warmup_s)
    n0, t0 = len(sink), time.monotonic()
    await asyncio.sleep(seconds)
    capacity = (len(sink) - n0) / (time.monotonic() - t0)
    await _cancel(tasks)
    await sched.close()
    return capacity


async def bench_queue(b: Bench) -> dict[str, Any]:
    c = b.engine.info.n_slots
    capacity = await measure_capacity(b, 4.0 if b.quick else 15.0)
    print(f"queue: capacity {capacity:.2f} req/s on {c} slots", file=sys.stderr)
    loads = [0.2, 0.5, 0.8] if b.quick else [0.2, 0.4, 0.6, 0.8, 0.9, 0.95]
    rng = random.Random(7)
    points = []
    for rho in loads:
        lam = rho * capacity
        n = 12 if b.quick else int(max(40, min(160, 30.0 * lam)))
        sched = await b.scheduler("fcfs", max_queue=1024, max_queue_per_tenant=1024)
        jobs = []
        for _ in range(n):
            jobs.append(asyncio.create_task(b.request(sched, "q", 5)))
            await asyncio.sleep(rng.expovariate(lam))
        await asyncio.gather(*jobs)
        est = (await sched.stats()).queue_model
        await sched.close()
        points.append({"rho_target": rho, "requests": n, **asdict(est)})
        print(
            f"queue/rho={rho}: measured rho {est.utilization} wait mean {est.observed_wait_mean_s} "
            f"mmc {est.predicted_wait_mmc_s} mg1 {est.predicted_wait_mg1_s}",
            file=sys.stderr,
        )
    return {"capacity_req_s": capacity, "slots": c, "points": points}


# -- plots -----------------------------------------------------------------------------------


def plot(results: dict[str, Any], out: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    made: list[Path] = []
    if "priority" in results:
        r = results["priority"]
        fig, ax = plt.subplots(figsize=(7, 4))
        pols = [p for p in PRIORITY_POLICIES if p in r]
        xs = range(len(pols))
        ax.bar([x - 0.2 for x in xs], [r[p]["idle_median_s"] for p in pols], 0.4, label="idle")
        ax.bar(
            [x + 0.2 for x in xs], [r[p]["saturated_median_s"] for p in pols], 0.4, label="saturated by flex"
        )
        for x, p in zip(xs, pols, strict=True):
            ax.text(x + 0.2, r[p]["saturated_median_s"], f"{r[p]['ratio']:.2f}×", ha="center", va="bottom")
        ax.set_xticks(list(xs), pols)
        ax.set_ylabel("median end-to-end latency of priority requests (s)")
        ax.set_title("priority requests: idle vs flex-saturated (smollm2:135m)")
        ax.legend()
        made.append(_save(fig, out / "scheduler_priority.png"))
    if "fairness" in results:
        r = results["fairness"]
        fig, ax = plt.subplots(figsize=(6, 4))
        for p, style in zip(FAIRNESS_POLICIES, ("-", "-.", "--"), strict=True):
            if p not in r:
                continue
            ser = r[p]["series"]
            ax.plot(
                [s[0] for s in ser], [s[2] / max(1, s[1] + s[2]) for s in ser], style, label=f"{p}: B share"
            )
        ax.axhline(0.45, color="grey", lw=0.8, ls=":", label="target 45 %")
        ax.set_ylim(0, 1)
        ax.set_xlabel("seconds")
        ax.set_ylabel("tenant B's share of generated tokens (cumulative)")
        ax.set_title(f"A has {r['a_clients']} clients, B {r['b_clients']} (10:1)")
        ax.legend()
        made.append(_save(fig, out / "scheduler_fairness.png"))
    if "queue" in results:
        pts = results["queue"]["points"]
        rho = [p["utilization"] or p["rho_target"] for p in pts]
        fig, ax = plt.subplots(figsize=(6, 4))
        ax.plot(rho, [p["observed_wait_mean_s"] for p in pts], "o-", label="observed mean")
        ax.plot(rho, [p["observed_wait_p95_s"] for p in pts], "o:", label="observed p95")
        ax.plot(rho, [p["predicted_wait_mmc_s"] for p in pts], "s--", label="M/M/c (Erlang C)")
        ax.plot(rho, [p["predicted_wait_mg1_s"] for p in pts], "^--", label="M/G/1 (P-K, pooled)")
        ax.set_xlabel("measured utilisation ρ")
        ax.set_ylabel("queue wait (s)")
        ax.set_title(f"queue wait vs load, {results['queue']['slots']} slots")
        ax.legend()
        made.append(_save(fig, out / "scheduler_queue_model.png"))
    return made


def _save(fig: Any, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return path


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", type=Path, default=DEFAULT_MODEL)
    ap.add_argument("--out", type=Path, default=RESULTS)
    ap.add_argument("--only", default="priority,fairness,queue")
    ap.add_argument("--slots", type=int, default=4)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--max-tokens", type=int, default=32)
    ap.add_argument("--quick", action="store_true", help="a smoke run: few requests, short phases")
    args = ap.parse_args(argv)
    derived = tempfile.TemporaryDirectory(prefix="llmos-bench-")  # one CPU re-encoding for every core
    bench = open_bench(
        args.model, args.slots, args.threads, args.max_tokens, Path(derived.name), quick=args.quick
    )
    engine = bench.engine
    runs: dict[str, Callable[[Bench], Any]] = {
        "priority": bench_priority,
        "fairness": bench_fairness,
        "queue": bench_queue,
    }
    results: dict[str, Any] = {
        "command": " ".join(["bench/scheduler_policies.py", *(argv if argv is not None else sys.argv[1:])]),
        "model": str(args.model),
        "slots": args.slots,
        "max_tokens": args.max_tokens,
        "quick": args.quick,
        "when_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "loadavg_at_start": os.getloadavg(),
        "cpus": os.cpu_count(),
    }
    for name in args.only.split(","):
        results[name] = asyncio.run(runs[name](bench))
    engine.unload()
    derived.cleanup()
    args.out.mkdir(parents=True, exist_ok=True)
    suffix = "_quick" if args.quick else ""
    (args.out / f"scheduler_policies{suffix}.json").write_text(json.dumps(results, indent=2))
    if not args.quick:
        for p in plot(results, args.out):
            print(f"wrote {p}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
