"""Cluster mode's router and autoscaler, simulated on a modelled clock (no Ray, no engine).

Three measurements, all with the real :class:`~llmos.cluster.PrefixRouter` and
:class:`~llmos.cluster.Autoscaler`:

1. **Prefix-cache hit rate, affinity vs round-robin.** ``R`` replicas of ``S`` slots each; a
   replica's prefix cache is its slots (llama.cpp reuses a slot's KV when a new prompt starts like
   the sequence it last held; modelled as an LRU of ``S`` system prompts). ``P = R·S`` tenants
   each send requests with their own system prompt (400 tokens) and a fresh question; arrivals are
   Poisson, service times from the SmolLM2-135M step curve (``bench/results/step_curve.json``).
   A hit: the chosen replica holds the request's system prompt.
2. **Scale: 100 nodes, 1,000 replicas.** Routing decisions per second and the router's state
   (prefix table entries and bytes) with 1,000 replicas of one model and 10,000 tenants' prompts;
   autoscaler decisions per second over 1,000 models.
3. **A step in load.** One model at 1 req/s jumps to 8 req/s at t = 300 s and back at t = 900 s;
   the supervisor looks every 2 s, a new replica serves 20 s after the decision (load time), the
   target wait is 2 s, the quiet period 60 s. The replica count and the predicted wait over time.

Usage (repository root)::

    nice -n 19 .venv/bin/python bench/cluster_sim.py            # a few minutes
    nice -n 19 .venv/bin/python bench/cluster_sim.py --quick    # seconds

Writes ``bench/results/cluster_sim.json`` and ``cluster_sim.md`` (not with ``--quick``).
"""

from __future__ import annotations

import argparse
import heapq
import json
import random
import sys
import time
import tracemalloc
from collections import OrderedDict
from pathlib import Path
from typing import Any

from llmos.cluster.autoscaler import Autoscaler, ModelLoad, replica_rates
from llmos.cluster.router import PrefixRouter

RESULTS = Path(__file__).resolve().parent / "results"
STEP_CURVE = RESULTS / "step_curve.json"
SYSTEM_TOKENS = 400
QUESTION_TOKENS = 40
OUTPUT_TOKENS = 64


def step_times() -> tuple[float, ...]:
    """Decode step time with 1 … 8 in the batch (SmolLM2-135M, 2 threads, as measured)."""
    decode = json.loads(STEP_CURVE.read_text())["decode_s"]
    return tuple(float(decode[str(k)]) for k in range(1, len(decode) + 1))


# --- 1. hit rate -----------------------------------------------------------------------------


class Replica:
    def __init__(self, slots: int) -> None:
        self.slots = slots
        self.cache: OrderedDict[int, None] = OrderedDict()
        self.outstanding = 0
        self.running = 0

    def serve(self, prompt_id: int) -> bool:
        hit = prompt_id in self.cache
        self.cache[prompt_id] = None
        self.cache.move_to_end(prompt_id)
        while len(self.cache) > self.slots:
            self.cache.popitem(last=False)
        return hit


def hit_rate(policy: str, replicas: int, slots: int, requests: int, load: float, seed: int) -> dict[str, Any]:
    rng = random.Random(seed)
    taus = step_times()
    prompts = replicas * slots
    # Each system prompt: its own 400 tokens (tenant id in every token, so the blocks differ).
    systems = [[100_000 + p * 1000 + (i % 997) for i in range(SYSTEM_TOKENS)] for p in range(prompts)]
    pool = [Replica(slots) for _ in range(replicas)]
    names = [f"r{i}" for i in range(replicas)]
    router = PrefixRouter()
    service_1 = OUTPUT_TOKENS * taus[0]
    capacity = replicas * slots / (OUTPUT_TOKENS * taus[-1])  # requests/s, all slots busy
    rate = load * capacity
    now, hits, rr = 0.0, 0, 0
    finishing: list[tuple[float, int, int]] = []
    per_replica = [0] * replicas
    for n in range(requests):
        now += rng.expovariate(rate)
        while finishing and finishing[0][0] <= now:
            _, idx, cost = heapq.heappop(finishing)
            pool[idx].outstanding -= cost
            pool[idx].running -= 1
        p = rng.randrange(prompts)
        tokens = systems[p] + [rng.randrange(16, 30000) for _ in range(QUESTION_TOKENS)]
        cost = len(tokens) + OUTPUT_TOKENS
        if policy == "affinity":
            d = router.route(tokens, {names[i]: pool[i].outstanding for i in range(replicas)})
            idx = names.index(d.replica)
        else:
            idx = rr % replicas
            rr += 1
        replica = pool[idx]
        hits += replica.serve(p) if n >= requests // 10 else 0  # after a warm-up tenth
        per_replica[idx] += 1
        batch = min(slots, replica.running + 1)
        duration = OUTPUT_TOKENS * taus[batch - 1] if batch <= len(taus) else service_1 * batch
        replica.outstanding += cost
        replica.running += 1
        heapq.heappush(finishing, (now + duration, idx, cost))
    counted = requests - requests // 10
    mean = sum(per_replica) / replicas
    return {
        "policy": policy,
        "replicas": replicas,
        "slots": slots,
        "system_prompts": prompts,
        "load": load,
        "seed": seed,
        "hit_rate": hits / counted,
        "imbalance_max_over_mean": max(per_replica) / mean,
        "decisions": dict(router.decisions) if policy == "affinity" else None,
    }


# --- 2. scale --------------------------------------------------------------------------------


def scale(replicas: int, tenants: int, routes: int, models: int, seed: int) -> dict[str, Any]:
    rng = random.Random(seed)
    names = [f"n{i // 10}/r{i}" for i in range(replicas)]  # 100 nodes x 10 replicas
    loads = {n: rng.randrange(0, 20_000) for n in names}
    systems = [[200_000 + t * 500 + i for i in range(SYSTEM_TOKENS)] for t in range(tenants)]
    tracemalloc.start()
    router = PrefixRouter()
    for t in range(tenants):  # every tenant's prompt known once
        router.route(systems[t] + [1] * QUESTION_TOKENS, loads)
    _, peak = tracemalloc.get_traced_memory()
    state_bytes = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    prompts = [
        systems[rng.randrange(tenants)] + [rng.randrange(16, 30000) for _ in range(QUESTION_TOKENS)]
        for _ in range(routes)
    ]
    t0 = time.perf_counter()
    for tokens in prompts:
        d = router.route(tokens, loads)
        loads[d.replica] += len(tokens)
    route_s = (time.perf_counter() - t0) / routes
    hashes = [router.hashes(tokens) for tokens in prompts[:200]]
    t0 = time.perf_counter()
    for h in hashes:
        router.route_hashes(h, loads)
    choose_s = (time.perf_counter() - t0) / len(hashes)

    clock = [0.0]
    scaler = Autoscaler(
        min_replicas=1, max_replicas=64, target_wait_s=2.0, quiet_period_s=60.0, clock=lambda: clock[0]
    )
    rates = replica_rates(step_times(), OUTPUT_TOKENS)
    loads_m = [ModelLoad(arrival_rate=rng.uniform(0, 20), rates=rates) for _ in range(models)]
    t0 = time.perf_counter()
    decisions = 0
    for i, load in enumerate(loads_m):
        clock[0] += 0.001
        decisions += scaler.decide(f"m{i}", 1 + i % 10, load, has_room=True) is not None
    decide_s = (time.perf_counter() - t0) / models
    return {
        "nodes": replicas // 10,
        "replicas": replicas,
        "tenant_prompts": tenants,
        "route_us": route_s * 1e6,
        "routes_per_s": 1 / route_s,
        "route_without_hashing_us": choose_s * 1e6,
        "router_entries": router.entries,
        "router_state_bytes": state_bytes,
        "router_peak_bytes": peak,
        "autoscaler_models": models,
        "autoscaler_decide_us": decide_s * 1e6,
        "autoscaler_decisions_per_s": 1 / decide_s,
        "scale_changes": decisions,
    }


# --- 3. a step in load -----------------------------------------------------------------------


def step_response(seed: int, end_s: float = 1500.0) -> dict[str, Any]:
    rates = replica_rates(step_times(), OUTPUT_TOKENS)
    clock = [0.0]
    scaler = Autoscaler(
        min_replicas=1, max_replicas=16, target_wait_s=2.0, quiet_period_s=60.0, clock=lambda: clock[0]
    )
    serving, pending = 1, []  # pending: times new replicas start serving
    timeline = []
    decisions = []
    t = 0.0
    while t <= end_s:
        clock[0] = t
        serving += sum(1 for p in pending if p <= t)
        pending = [p for p in pending if p > t]
        lam = 8.0 if 300 <= t < 900 else 1.0
        load = ModelLoad(arrival_rate=lam, rates=rates)
        d = scaler.decide("m", serving + len(pending), load, has_room=True)
        if d is not None:
            decisions.append({"t": t, "action": d.action, "replicas": d.replicas, "reason": d.reason})
            if d.action == "up":
                pending.extend([t + 20.0] * (d.replicas - serving - len(pending)))
            else:
                serving -= 1
        wait = load.predicted_wait(serving)
        timeline.append(
            {
                "t": t,
                "arrival_rate": lam,
                "serving": serving,
                "predicted_wait_s": None if wait is None or wait == float("inf") else round(wait, 3),
            }
        )
        t += 2.0
    first_ok = next(
        (
            p["t"]
            for p in timeline
            if p["t"] >= 300 and p["predicted_wait_s"] is not None and p["predicted_wait_s"] <= 2.0
        ),
        None,
    )
    back = next(
        (
            p["t"]
            for p in timeline
            if p["t"] >= 900 and p["serving"] == min(q["serving"] for q in timeline if q["t"] >= 900)
        ),
        None,
    )
    return {
        "seed": seed,
        "peak_replicas": max(p["serving"] for p in timeline),
        "seconds_to_target_after_step_up": None if first_ok is None else first_ok - 300,
        "seconds_to_scale_down_after_step_down": None if back is None else back - 900,
        "decisions": decisions,
        "timeline": timeline[::5],
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    requests = 2000 if args.quick else 6000
    hits = [
        hit_rate(policy, replicas, 8, requests, load, seed)
        for policy in ("affinity", "round_robin")
        for replicas in (2, 4)
        for load in (0.3, 0.7)
        for seed in ((1,) if args.quick else (1, 2))
    ]
    big = scale(1000, 1000 if args.quick else 10000, 2000 if args.quick else 5000, 1000, 1)
    step = step_response(1)
    out = {
        "command": "bench/cluster_sim.py" + (" --quick" if args.quick else ""),
        "hit_rate": hits,
        "scale": big,
        "step": step,
    }
    for h in hits:
        print(
            f"{h['policy']:12s} R={h['replicas']} load={h['load']} seed={h['seed']}: hit rate {h['hit_rate']:.3f}, imbalance {h['imbalance_max_over_mean']:.2f}"
        )
    print(json.dumps(big, indent=1))
    print(json.dumps({k: v for k, v in step.items() if k != "timeline"}, indent=1)[:3000])
    if not args.quick:
        (RESULTS / "cluster_sim.json").write_text(json.dumps(out, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
