"""The numbers and the report of ``peer_llama_server.py``: one cell's figures from its request
records and CPU samples, medians over rounds, ratios to the peer, the issue's goals, the
Markdown, the plot, and merging a run into the results file next to earlier runs.

Definitions (the report repeats them):

* tok/s: output tokens streamed to the clients (every stream, cut short or not) / the cell's wall
  time (first request's start to last request's end);
* cut short: a stream that failed (no ``[DONE]``, no finish reason, an error) or that finished
  with fewer tokens than asked;
* TTFT: until the first content chunk, over the streams that completed;
* CPU s / 1k tokens: CPU seconds (user + system) a process spent during the cell, per 1,000
  streamed tokens; ``server`` is the process we started, ``engine`` its child processes.
"""

from __future__ import annotations

import statistics
import textwrap
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from llmos.benchmark import RequestRecord, summarize
from llmos.benchmark.plot import pyplot
from peer_servers import md_table

PEER = "llama-server"


@dataclass(frozen=True)
class CpuSample:
    """CPU seconds (user + system) of a process tree at one moment."""

    root: float
    children: Mapping[int, float]
    """By pid: the root's descendants."""


def cpu_delta(before: CpuSample, after: CpuSample) -> tuple[float, float]:
    """CPU seconds spent between two samples by the root and by its descendants. A child that
    appeared in between counts whole; one that vanished counts nothing (its last times are lost)."""
    children = sum(t - before.children.get(pid, 0.0) for pid, t in after.children.items())
    return after.root - before.root, children


def per_1k(seconds: float | None, tokens: int) -> float | None:
    return None if seconds is None or tokens <= 0 else seconds * 1000.0 / tokens


def cell_stats(
    records: Sequence[RequestRecord],
    duration_s: float,
    *,
    max_tokens: int,
    server_cpu_s: float,
    engine_cpu_s: float | None,
    client_cpu_s: float,
) -> dict[str, Any]:
    """One (server, concurrency, round) cell. ``engine_cpu_s`` is None for a server without
    child processes."""
    s = summarize(records, duration_s)
    short = [r for r in records if not r.ok or r.output_tokens < max_tokens]
    tokens = s.delivered_output_tokens
    return {
        "requests": s.requests,
        "completed": s.completed,
        "cut_short": len(short),
        "errors": s.errors,
        "duration_s": round(duration_s, 3),
        "streamed_tokens": tokens,
        "tok_s": tokens / duration_s if duration_s > 0 else 0.0,
        "completed_tok_s": s.output_throughput,
        "tokens_source": s.tokens_source,
        "ttft_ms": {"p50": s.ttft.p50, "p90": s.ttft.p90},
        "tpot_ms": {"p50": s.tpot.p50, "p90": s.tpot.p90},
        "cpu_s": {"server": server_cpu_s, "engine": engine_cpu_s, "client": client_cpu_s},
        "cpu_s_per_1k_tokens": {
            "server": per_1k(server_cpu_s, tokens),
            "engine": per_1k(engine_cpu_s, tokens),
            "client": per_1k(client_cpu_s, tokens),
        },
    }


def _median(values: Sequence[float | None]) -> float | None:
    xs = [v for v in values if v is not None]
    return statistics.median(xs) if xs else None


def medians(cells: Sequence[Mapping[str, Any]]) -> dict[str, dict[str, dict[str, Any]]]:
    """By server and concurrency (a string key, as JSON has it): the median over rounds of every
    rate, latency and CPU figure; streams cut short and sent are summed over rounds."""
    groups: dict[tuple[str, int], list[Mapping[str, Any]]] = {}
    for c in cells:
        groups.setdefault((c["server"], c["concurrency"]), []).append(c)
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for (server, conc), rows in groups.items():
        out.setdefault(server, {})[str(conc)] = {
            "rounds": len(rows),
            "requests": sum(r["requests"] for r in rows),
            "cut_short": sum(r["cut_short"] for r in rows),
            "tok_s": _median([r["tok_s"] for r in rows]),
            "ttft_p50_ms": _median([r["ttft_ms"]["p50"] for r in rows]),
            "ttft_p90_ms": _median([r["ttft_ms"]["p90"] for r in rows]),
            "cpu_s_per_1k_tokens": {
                k: _median([r["cpu_s_per_1k_tokens"][k] for r in rows])
                for k in ("server", "engine", "client")
            },
        }
    return out


def _ratio(a: float | None, b: float | None) -> float | None:
    return None if a is None or not b else a / b


def ratios(med: Mapping[str, Mapping[str, Mapping[str, Any]]], peer: str = PEER) -> dict[str, dict[str, Any]]:
    """Each other server's tok/s and TTFT p50 over the peer's, by concurrency."""
    base = med.get(peer, {})
    return {
        server: {
            c: {
                "tok_s": _ratio(m["tok_s"], base[c]["tok_s"]),
                "ttft_p50": _ratio(m["ttft_p50_ms"], base[c]["ttft_p50_ms"]),
            }
            for c, m in by_c.items()
            if c in base
        }
        for server, by_c in med.items()
        if server != peer
    }


GOALS = (
    ("tok_s", "aggregate tok/s ≥ 1.0× llama-server's at every concurrency"),
    ("ttft", "TTFT p50 ≤ llama-server's at every concurrency"),
    ("queueing", "tok/s at 32 streams (queueing) ≥ tok/s at 16"),
    ("cut_short", "no stream cut short"),
)


def goals(
    med: Mapping[str, Mapping[str, Mapping[str, Any]]],
    rat: Mapping[str, Mapping[str, Mapping[str, float | None]]],
) -> dict[str, dict[str, bool | None]]:
    """Issue 15's point 5, per server compared with the peer: True (holds), False, or None (not
    measured: a concurrency missing, or no value)."""
    out: dict[str, dict[str, bool | None]] = {}
    for server, by_c in rat.items():
        tok = [r["tok_s"] for r in by_c.values()]
        ttft = [r["ttft_p50"] for r in by_c.values()]
        m = med[server]
        at16, at32 = (m.get(c, {}).get("tok_s") for c in ("16", "32"))
        queueing = None if at16 is None or at32 is None else at32 >= at16
        out[server] = {
            "tok_s": None if not tok or None in tok else all(r >= 1.0 for r in tok if r is not None),
            "ttft": None if not ttft or None in ttft else all(r <= 1.0 for r in ttft if r is not None),
            "queueing": queueing,
            "cut_short": sum(x["cut_short"] for x in m.values()) == 0,
        }
    return out


def merge_run(existing: Mapping[str, Any] | None, label: str, run: Mapping[str, Any]) -> dict[str, Any]:
    """The results file with ``run`` stored under ``label`` (replacing a run of that label only):
    a later "after" run never overwrites the "before" baseline."""
    runs = dict((existing or {}).get("runs", {}))
    runs[label] = dict(run)
    return {"schema": "llmos.peer-llama-server/1", "runs": runs}


# -- Markdown --------------------------------------------------------------------------------


def _num(v: float | None, fmt: str = "{:.1f}") -> str:
    return "-" if v is None else fmt.format(v)


def _secs(ms: float | None) -> str:
    return "-" if ms is None else f"{ms / 1000:.2f} s"


def _x(v: float | None) -> str:
    return "-" if v is None else f"{v:.2f}×"


def _mark(v: bool | None) -> str:
    return {True: "holds", False: "**not**", None: "not measured"}[v]


def run_markdown(label: str, run: Mapping[str, Any]) -> list[str]:
    servers: list[str] = [s["key"] for s in run["servers"]]
    others = [s for s in servers if s != PEER]
    concs: list[int] = run["settings"]["concurrency"]

    def m(server: str, c: int) -> Mapping[str, Any]:
        return run["medians"].get(server, {}).get(str(c)) or {}

    def vs_peer(server: str, c: int, key: str) -> str:
        return (
            "" if server == PEER else f" ({_x((run['ratios'].get(server, {}).get(str(c)) or {}).get(key))})"
        )

    def by_concurrency(cell: Callable[[str, int], str], columns: Sequence[str] = servers) -> list[str]:
        head = ["concurrent streams", *columns]
        return md_table(head, [[str(c), *(cell(s, c) for s in columns)] for c in concs])

    def cpu(column: str, c: int) -> str:
        server, kind = column.rsplit(" ", 1)
        return _num(m(server, c).get("cpu_s_per_1k_tokens", {}).get(kind), "{:.2f}")

    st = run["settings"]
    return [
        f"## Run `{label}` — {run['started_at']}",
        "",
        f"Command: `{run['command']}`  ",
        f"Machine: {run['machine']}  ",
        f"Versions: {run['versions']}  ",
        f"Load: `{run['uptime_before']}` before, `{run['uptime_after']}` after. {run.get('note', '')}",
        "",
        f"Both servers: the same GGUF (`{st['model']}`), {st['threads']} threads, 16 slots, n_ctx 8192, "
        f"streaming chat, ~{st['prompt_words']}-word seeded prompts, {st['max_tokens']} output tokens "
        "with `ignore_eos`, greedy, closed loop; "
        f"{run.get('rounds_done', st['rounds'])} of {st['rounds']} interleaved rounds done (server "
        "order rotated each round, each server restarted "
        f"each round, {st['warmup']} warm-up requests after each start); requests per cell: "
        + ", ".join(f"{c}: {n}" for c, n in st["requests"].items())
        + ". Figures are medians over rounds; streams cut short are summed.",
        "",
        *md_table(
            ["server", "started as"], [[s["key"], f"`{s['command']}`"] for s in run["servers"]], left=2
        ),
        "",
        "### Aggregate output tokens/s (ratio to llama-server)",
        "",
        *by_concurrency(lambda s, c: _num(m(s, c).get("tok_s")) + vs_peer(s, c, "tok_s")),
        "",
        "### Time to first token p50 / p90 (TTFT p50 ratio to llama-server)",
        "",
        *by_concurrency(
            lambda s, c: (
                f"{_secs(m(s, c).get('ttft_p50_ms'))} / {_secs(m(s, c).get('ttft_p90_ms'))}"
                + vs_peer(s, c, "ttft_p50")
            )
        ),
        "",
        "### Streams cut short (of streams sent, all rounds)",
        "",
        *by_concurrency(lambda s, c: f"{m(s, c).get('cut_short', '-')} / {m(s, c).get('requests', '-')}"),
        "",
        "### CPU seconds per 1,000 streamed tokens",
        "",
        "`server`: the process started (llama-server; `llmos serve`); `engine`: llmos's engine "
        "process(es), its children. The load generator's own CPU is in the JSON (`client`).",
        "",
        *by_concurrency(cpu, [f"{s} server" for s in servers] + [f"{s} engine" for s in others]),
        "",
        "### Issue 15, point 5",
        "",
        *md_table(
            ["goal", *others],
            [[text, *(_mark(run["goals"][s][key]) for s in others)] for key, text in GOALS],
            left=len(others) + 1,
        ),
        "",
        f"![plot]({run['plot']})",
        "",
    ]


def comparison_markdown(runs: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """llmos's figures run by run (e.g. before and after a change), each beside its own run's
    llama-server: only ratios within one run compare machines fairly."""
    labels = list(runs)
    servers = [s["key"] for s in next(iter(runs.values()))["servers"] if s["key"] != PEER]
    concs = sorted({int(c) for run in runs.values() for c in run["settings"]["concurrency"]})
    head = ["concurrent streams", "server"]
    for lab in labels:
        head += [
            f"tok/s ({lab})",
            f"× llama-server ({lab})",
            f"server CPU s/1k ({lab})",
            f"engine CPU s/1k ({lab})",
        ]
    rows = []
    for c in concs:
        for s in servers:
            cells = [str(c), s]
            for lab in labels:
                m = runs[lab]["medians"].get(s, {}).get(str(c)) or {}
                r = runs[lab]["ratios"].get(s, {}).get(str(c)) or {}
                cpu = m.get("cpu_s_per_1k_tokens", {})
                cells += [_num(m.get("tok_s")), _x(r.get("tok_s")), _num(cpu.get("server"), "{:.2f}")]
                cells.append(_num(cpu.get("engine"), "{:.2f}"))
            rows.append(cells)
    return ["## Runs compared", "", *md_table(head, rows), ""]


def markdown(doc: Mapping[str, Any]) -> str:
    runs: Mapping[str, Mapping[str, Any]] = doc["runs"]
    out = [
        "# llmos vs llama.cpp's llama-server (SmolLM2-135M-Instruct Q4_1, streaming chat)",
        "",
        "Made by `bench/peer_llama_server.py` (its docstring says how). Each run below measured both "
        "servers one after the other on the same machine; only ratios within one run mean much "
        "when the machine is shared. tok/s counts every streamed token; a stream is *cut short* "
        "when it ends without its finish reason or `[DONE]`, or with fewer tokens than asked; TTFT "
        "is over the completed streams.",
        "",
    ]
    if len(runs) > 1:
        out += comparison_markdown(runs)
    for label, run in runs.items():
        out += run_markdown(label, run)
    return "\n".join(out)


# -- plot ------------------------------------------------------------------------------------


def plot(label: str, run: Mapping[str, Any], path: Path) -> None:
    plt = pyplot()
    servers = [s["key"] for s in run["servers"]]
    concs = run["settings"]["concurrency"]
    med = run["medians"]
    fig, axes = plt.subplots(1, 3, figsize=(17, 5.2))
    width = 0.8 / len(servers)
    for k, s in enumerate(servers):
        xs = [i + (k - (len(servers) - 1) / 2) * width for i in range(len(concs))]
        cells = [med.get(s, {}).get(str(c)) or {} for c in concs]
        colour = f"C{k}"
        axes[0].bar(xs, [c.get("tok_s") or 0 for c in cells], width, label=s, color=colour)
        axes[1].bar(xs, [(c.get("ttft_p50_ms") or 0) / 1000 for c in cells], width, label=s, color=colour)
        cpu = [c.get("cpu_s_per_1k_tokens", {}) for c in cells]
        server = [x.get("server") or 0 for x in cpu]
        engine = [x.get("engine") or 0 for x in cpu]
        axes[2].bar(xs, server, width, label=f"{s} server", color=colour)
        axes[2].bar(
            xs, engine, width, bottom=server, label=f"{s} engine", color=colour, hatch="//", alpha=0.6
        )
        for x, c in zip(xs, cells, strict=True):
            if c.get("cut_short"):
                axes[0].annotate(f"{c['cut_short']} cut", (x, c.get("tok_s") or 0), ha="center", fontsize=6)
    axes[0].set(title="aggregate output tokens/s (median of rounds)", ylabel="tokens/s")
    axes[1].set(title="TTFT p50", ylabel="s", yscale="log")
    axes[2].set(title="CPU seconds per 1,000 streamed tokens", ylabel="CPU s")
    for ax in axes:
        ax.set_xticks(range(len(concs)), [f"{c} streams" for c in concs])
        ax.grid(axis="y", alpha=0.3)
        ax.legend(fontsize=7)
    title = f"run '{label}', {run['started_at']}: {run['machine']}; load {run['uptime_before']}"
    fig.suptitle(textwrap.fill(title, 170), fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
