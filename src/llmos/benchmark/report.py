"""A benchmark's results as a JSON document (``llmos bench --json``) and as a terminal table.

The document (``"schema": "llmos.bench/1"``)::

    {"schema", "started_at", "workload": {...settings, no API key...},
     "summary": {...Summary fields; latencies in ms...},
     "requests": [{...one RequestRecord each, times in seconds...}]}

``docs/bench.md`` describes every field.
"""

from __future__ import annotations

import json
import platform
from pathlib import Path
from typing import Any

from rich.console import Group
from rich.table import Table

from llmos.benchmark.loadgen import BenchResult
from llmos.benchmark.stats import Distribution, Summary

SCHEMA = "llmos.bench/1"


def document(result: BenchResult, summary: Summary, *, include_requests: bool = True) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "schema": SCHEMA,
        "started_at": result.started_at,
        "interrupted": result.interrupted,
        "client": {"python": platform.python_version(), "machine": platform.machine()},
        "workload": result.workload.describe(),
        "summary": summary.to_json(),
    }
    if include_requests:
        doc["requests"] = [r.to_json() for r in result.records]
    return doc


def write_json(path: Path, result: BenchResult, summary: Summary) -> None:
    """Write the document to ``path`` (via a temporary file, so a reader never sees half of it)."""
    tmp = path.with_name(path.name + ".part")
    tmp.write_text(json.dumps(document(result, summary), indent=2) + "\n")
    tmp.replace(path)


def _ms(v: float | None) -> str:
    return "-" if v is None else f"{v:,.1f}"


def summary_table(result: BenchResult, summary: Summary) -> Group:
    """What ``llmos bench`` prints at the end: totals, then latency percentiles."""
    w = result.workload
    arrivals = f"closed loop x{w.concurrency}" if w.rate is None else f"Poisson {w.rate:g} req/s"
    mode = "stream" if w.stream else "no stream"
    stopped = ", interrupted: finished requests only" if result.interrupted else ""
    totals = Table(title=f"{w.model} @ {w.url}{w.path} ({arrivals}, {mode}{stopped})", title_justify="left")
    totals.add_column("metric")
    totals.add_column("value", justify="right")
    errors = ", ".join(f"{k}: {v}" for k, v in summary.errors.items()) or "none"
    rows = [
        ("requests ok / sent", f"{summary.completed} / {summary.requests}"),
        ("errors", errors),
        ("duration", f"{summary.duration_s:.2f} s"),
        ("request throughput", f"{summary.request_throughput:.2f} req/s"),
        ("output token throughput", f"{summary.output_throughput:.1f} tok/s"),
        ("total token throughput", f"{summary.total_token_throughput:.1f} tok/s"),
        ("output tokens (ok)", f"{summary.output_tokens:,}"),
    ]
    s = summary.slo
    if (s.ttft_ms, s.tpot_ms, s.e2e_ms) != (None, None, None):
        given = ", ".join(
            f"{name} <= {v:g} ms"
            for name, v in (("TTFT", s.ttft_ms), ("TPOT", s.tpot_ms), ("e2e", s.e2e_ms))
            if v is not None
        )
        rows.append(("goodput", f"{summary.goodput_fraction:.1%}, {summary.goodput_rate:.2f} req/s"))
        rows.append(("SLO", given))
    for label, row in rows:
        totals.add_row(label, row)
    latency = Table(title="latency (ms, successful requests)", title_justify="left")
    latency.add_column("metric")
    for name in ("mean", "p50", "p90", "p95", "p99"):
        latency.add_column(name, justify="right")
    dists: tuple[tuple[str, Distribution], ...] = (
        ("TTFT", summary.ttft),
        ("TPOT", summary.tpot),
        ("ITL", summary.itl),
        ("e2e", summary.e2e),
    )
    for label, d in dists:
        latency.add_row(label, _ms(d.mean), _ms(d.p50), _ms(d.p90), _ms(d.p95), _ms(d.p99))
    return Group(totals, latency)
