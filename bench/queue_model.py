"""The queueing model's predicted mean queue wait against the scheduler's observed one, ρ 0.2 … 0.9.

Runs the real :class:`~llmos.scheduler.ModelScheduler` (FCFS) on a :class:`FakeEngine` whose step
time depends on the batch like SmolLM2-135M's on llama.cpp (the curve ``bench/step_curve.py``
measured, ``bench/results/step_curve.json``: ``base + per_decode·n + per_prefill·prompt tokens``,
with log-normal jitter), driven by a modelled clock, so long runs take seconds and load on the
machine cannot distort them. Requests arrive as a Poisson stream and are handed to the scheduler
at step boundaries, as the engine core's loop does.

For each workload, load and seed it reports the observed mean wait (submit → first slot, after a
warm-up) beside

* ``load_aware``: the model's load-aware prediction at the run's arrival rate, with the service
  curve it learned online (:meth:`QueueModel.predicted_wait_at`);
* ``live``: the mean of its live predictions (:meth:`QueueModel.predicted_wait`, arrival rate
  measured over its window) sampled every 50 arrivals;
* ``mmc`` and ``mg1``: the previous formulas with the mean slot-holding time.

Usage (repository root)::

    nice -n 19 .venv/bin/python bench/queue_model.py                # the sweep (~10 minutes)
    nice -n 19 .venv/bin/python bench/queue_model.py --quick        # seconds
    nice -n 19 .venv/bin/python bench/queue_model.py --requests 16000 --tag _long   # long runs
    nice -n 19 .venv/bin/python bench/queue_model.py --workloads long --loads 0.3,0.5   # long prompts

Workloads: ``fixed`` and ``mixed`` by default; ``long`` (prompts of 64 – 1,536 tokens, several
``n_batch`` chunks) on request. Writes ``bench/results/queue_model<tag>.json`` and ``.png``
(``queue_model_quick.json`` with ``--quick``, no plot).
"""

from __future__ import annotations

import argparse
import json
import math
import random
import statistics
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from llmos.config import SchedulerConfig
from llmos.engine.base import LoadSpec, SamplingParams, SequenceSpec, StepPlan, StepResult
from llmos.engine.fake import FakeEngine
from llmos.scheduler import GenerationRequest, ModelScheduler, RequestClass
from llmos.scheduler.request_events import SchedulerEvent

RESULTS = Path(__file__).parent / "results"
CURVE = RESULTS / "step_curve.json"
LOADS = (0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)


@dataclass(frozen=True)
class Curve:
    base_s: float
    per_decode_s: float
    per_prefill_token_s: float
    jitter: float = 0.1

    @classmethod
    def load(cls, path: Path, jitter: float) -> Curve:
        fit = json.loads(path.read_text())["fit"]
        return cls(fit["base_s"], fit["per_decode_s"], fit["per_prefill_token_s"], jitter)


@dataclass(frozen=True)
class Workload:
    name: str
    prompt: tuple[int, int]
    """Prompt tokens, uniform in [lo, hi]."""
    tokens: tuple[int, int]
    """Tokens generated, uniform in [lo, hi]."""


WORKLOADS = {
    "fixed": Workload("fixed", (30, 30), (32, 32)),  # scheduler_policies.py's requests
    "mixed": Workload("mixed", (16, 256), (8, 64)),
    # Prompts up to three n_batch chunks: a chunk step costs up to 72 ms more than a decode step.
    "long": Workload("long", (64, 1536), (8, 64)),
}
DEFAULT_WORKLOADS = ("fixed", "mixed")


class CurveEngine(FakeEngine):
    """A fake engine whose steps advance a modelled clock by the measured step-time curve."""

    def __init__(self, curve: Curve, rng: random.Random) -> None:
        self.now = 0.0
        super().__init__(clock=lambda: self.now, sleep=self._spend)
        self.curve = curve
        self.rng = rng

    def _spend(self, seconds: float) -> None:
        self.now += seconds

    def step(self, plan: StepPlan | None = None) -> StepResult:
        tokens = dict(plan.tokens) if plan is not None else {}
        decoding = sum(1 for n in tokens.values() if n == 1)
        prefill = sum(n for n in tokens.values() if n > 1)
        c = self.curve
        cost = c.base_s + c.per_decode_s * decoding + c.per_prefill_token_s * prefill
        self.now += cost * math.exp(self.rng.gauss(0.0, c.jitter) - c.jitter**2 / 2)
        return super().step(plan)


def _ctx(workload: Workload) -> int:
    """Context per slot: room for the longest request (512 for the fixed and mixed workloads)."""
    return max(512, workload.prompt[1] + workload.tokens[1])


def make_request(rng: random.Random, workload: Workload, rid: str) -> GenerationRequest:
    """A request of ``workload``: random prompt tokens, a random length, no early EOS."""
    p, n = rng.randint(*workload.prompt), rng.randint(*workload.tokens)
    params = SamplingParams(temperature=0.0, max_tokens=n, ignore_eos=True)
    prompt = tuple(16 + rng.randrange(200) for _ in range(p))
    return GenerationRequest(rid, SequenceSpec(rid, prompt, params), RequestClass(tenant="q"))


def simulate(
    workload: Workload, curve: Curve, *, slots: int, lam: float, requests: int, seed: int, warmup: int
) -> dict[str, Any]:
    """One run: ``requests`` Poisson arrivals at ``lam``/s; observed and predicted waits."""
    rng = random.Random(seed)
    engine = CurveEngine(curve, random.Random(seed + 1))
    engine.load(LoadSpec(model_path=Path("curve"), n_ctx=slots * _ctx(workload), n_slots=slots, n_batch=512))
    admitted: dict[str, float] = {}
    queued: dict[str, float] = {}

    def on_event(e: SchedulerEvent) -> None:
        if e.kind == "queue":
            queued[e.request_id] = e.at
        elif e.kind == "admit":
            admitted[e.request_id] = e.at

    sched = ModelScheduler(
        engine, config=SchedulerConfig(policy="fcfs"), clock=lambda: engine.now, on_event=on_event
    )
    qm = sched.queue_model
    next_at = rng.expovariate(lam)
    sent = 0
    live: list[float] = []
    while sent < requests or sched.has_work:
        while sent < requests and next_at <= engine.now:
            sched.add(make_request(rng, workload, f"r{sent}"))
            sent += 1
            next_at += rng.expovariate(lam)
            if sent % 50 == 0 and sent > warmup:
                w = qm.predicted_wait()
                if w is not None and math.isfinite(w):
                    live.append(w)
        if not sched.has_work and sent < requests:
            engine.now = next_at
            continue
        sched.step()
    waits = [admitted[r] - queued[r] for r in (f"r{i}" for i in range(warmup, requests)) if r in admitted]
    est = qm.estimate()
    aware = qm.predicted_wait_at(lam)
    return {
        "workload": workload.name,
        "seed": seed,
        "lambda": lam,
        "requests": requests,
        "observed_mean_s": statistics.fmean(waits),
        "load_aware_s": aware,
        "live_mean_s": statistics.fmean(live) if live else None,
        "mmc_s": est.predicted_wait_mmc_s,
        "mg1_s": est.predicted_wait_mg1_s,
        "step_time_s": est.step_time_s,
        "steps_per_request": est.steps_per_request,
        "steps_scv": est.steps_scv,
        "utilization_mean_s": est.utilization,
    }


def capacity(workload: Workload, curve: Curve, *, slots: int, seed: int) -> float:
    """Requests/s the model completes with every slot busy and a queue always waiting
    (a closed loop of 2·slots clients), over 800 completions after 200 of warm-up."""
    rng = random.Random(seed)
    engine = CurveEngine(curve, random.Random(seed + 1))
    engine.load(LoadSpec(model_path=Path("curve"), n_ctx=slots * _ctx(workload), n_slots=slots, n_batch=512))
    sched = ModelScheduler(engine, config=SchedulerConfig(policy="fcfs"), clock=lambda: engine.now)
    sent = done = 0
    t0 = 0.0
    while True:
        while sched.in_flight < 2 * slots:
            sched.add(make_request(rng, workload, f"c{sent}"))
            sent += 1
        for _rid, out in sched.step():
            if getattr(out, "finish_reason", None) is not None:
                done += 1
                if done == 200:
                    t0 = engine.now
                elif done == 1000:
                    return 800 / (engine.now - t0)


def _run(args: tuple[str, Curve, int, float, float, int, int, int]) -> dict[str, Any]:
    name, curve, slots, rho, cap, requests, seed, warmup = args
    r = simulate(
        WORKLOADS[name], curve, slots=slots, lam=rho * cap, requests=requests, seed=seed, warmup=warmup
    )
    r["rho"] = rho
    print(
        f"{name} rho={rho} seed={seed}: observed {r['observed_mean_s']:.4f}s "
        f"load-aware {r['load_aware_s']:.4f}s mmc {r['mmc_s']}",
        file=sys.stderr,
    )
    return r


def summarize(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    rows = []
    for name in WORKLOADS:
        for rho in sorted({r["rho"] for r in runs}):
            pts = [r for r in runs if r["workload"] == name and r["rho"] == rho]
            if not pts:
                continue
            obs = statistics.fmean(r["observed_mean_s"] for r in pts)

            def mean_of(key: str, pts: list[dict[str, Any]] = pts) -> float | None:
                vals = [r[key] for r in pts if r[key] is not None and math.isfinite(r[key])]
                return statistics.fmean(vals) if len(vals) == len(pts) else None

            aware, live, mmc = mean_of("load_aware_s"), mean_of("live_mean_s"), mean_of("mmc_s")
            rows.append(
                {
                    "workload": name,
                    "rho": rho,
                    "seeds": len(pts),
                    "observed_mean_s": obs,
                    "observed_by_seed_s": [r["observed_mean_s"] for r in pts],
                    "load_aware_s": aware,
                    "load_aware_error": None if aware is None else aware / obs - 1,
                    "live_s": live,
                    "live_error": None if live is None else live / obs - 1,
                    "mmc_s": mmc,
                    "mmc_error": None if mmc is None else mmc / obs - 1,
                }
            )
    return rows


def plot(rows: list[dict[str, Any]], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(dict.fromkeys(r["workload"] for r in rows))
    fig, axes = plt.subplots(1, len(names), figsize=(5.5 * len(names), 4), squeeze=False)
    for ax, name in zip(axes[0], names, strict=True):
        pts = [r for r in rows if r["workload"] == name]
        rho = [r["rho"] for r in pts]
        ax.plot(rho, [r["observed_mean_s"] for r in pts], "o-", label="observed mean")
        ax.plot(rho, [r["load_aware_s"] for r in pts], "s--", label="load-aware model")
        ax.plot(rho, [r["live_s"] for r in pts], "x:", label="load-aware, live λ")
        ax.plot(rho, [r["mmc_s"] for r in pts], "^:", label="M/M/c (mean S)")
        ax.set_yscale("log")
        ax.set_xlabel("offered load ρ (λ / saturated capacity)")
        ax.set_ylabel("mean queue wait (s)")
        ax.set_title(f"workload '{name}'")
        ax.legend()
    fig.tight_layout()
    fig.savefig(out, dpi=110)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--curve", type=Path, default=CURVE)
    ap.add_argument("--jitter", type=float, default=0.1, help="log-normal sigma of step times")
    ap.add_argument("--slots", type=int, default=4)
    ap.add_argument("--requests", type=int, default=6000, help="per run (×0.3/(1−ρ) above ρ 0.7)")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--out", type=Path, default=RESULTS)
    ap.add_argument("--workloads", default=",".join(DEFAULT_WORKLOADS), help=f"of {', '.join(WORKLOADS)}")
    ap.add_argument("--loads", default=",".join(map(str, LOADS)), help="the values of ρ to run")
    ap.add_argument("--tag", default="", help="written as queue_model<tag>.json (and .png)")
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args(argv)
    curve = Curve.load(args.curve, args.jitter)
    requests = 300 if args.quick else args.requests
    warmup = requests // 10
    seeds = 1 if args.quick else args.seeds
    names = args.workloads.split(",")
    loads = tuple(float(x) for x in args.loads.split(","))
    caps = {name: capacity(WORKLOADS[name], curve, slots=args.slots, seed=99) for name in names}
    print(f"capacity (req/s): {caps}", file=sys.stderr)
    # Waits near saturation vary most from run to run: longer runs there.
    jobs = [
        (
            name,
            curve,
            args.slots,
            rho,
            caps[name],
            int(requests * max(1.0, 0.3 / (1 - rho))),
            1000 * s + int(rho * 100),
            warmup,
        )
        for name in names
        for rho in loads
        for s in range(seeds)
    ]
    t0 = time.monotonic()
    with ProcessPoolExecutor(args.workers) as pool:
        runs = list(pool.map(_run, jobs))
    rows = summarize(runs)
    for r in rows:
        print(
            f"{r['workload']:5} ρ={r['rho']:.1f} observed {r['observed_mean_s']:.4f}s "
            f"load-aware {r['load_aware_error']!s:>8.8} live {r['live_error']!s:>8.8} "
            f"mmc {r['mmc_error']!s:>8.8}",
            file=sys.stderr,
        )
    result = {
        "command": " ".join(["bench/queue_model.py", *(argv if argv is not None else sys.argv[1:])]),
        "curve": curve.__dict__,
        "slots": args.slots,
        "requests_per_run": requests,
        "warmup": warmup,
        "capacity_req_s": caps,
        "seconds": time.monotonic() - t0,
        "rows": rows,
        "runs": runs,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    suffix = "_quick" if args.quick else args.tag
    (args.out / f"queue_model{suffix}.json").write_text(json.dumps(result, indent=2))
    if not args.quick:
        plot(rows, args.out / f"queue_model{suffix}.png")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
