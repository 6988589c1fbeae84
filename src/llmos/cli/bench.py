"""``llmos bench``: load-test any OpenAI-compatible server and report latency, throughput and
goodput. A client tool: it talks HTTP straight to the URL (llmos's or a peer's), not through
llmos's SDK, since the target need not be llmos."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from llmos.errors import InvalidRequest

if TYPE_CHECKING:
    from llmos.benchmark.loadgen import BenchResult, LoadGenerator, RequestRecord
    from llmos.benchmark.workload import Endpoint, Workload

DEFAULT_URL = "http://127.0.0.1:8470"

out_console = Console()
err_console = Console(stderr=True)


def _extra_body(text: str | None) -> dict[str, Any]:
    if not text:
        return {}
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise InvalidRequest(f"--extra-body is not JSON: {exc}", param="extra_body") from None
    if not isinstance(value, dict):
        raise InvalidRequest("--extra-body must be a JSON object", param="extra_body")
    return value


def bench(
    model: Annotated[str, typer.Option("--model", "-m", help="Model name the server knows")],
    url: Annotated[
        str | None,
        typer.Option(help="Server URL (…/v1 or its root; default: LLMOS_BASE_URL or http://127.0.0.1:8470)"),
    ] = None,
    api_key: Annotated[
        str | None, typer.Option("--api-key", help="Bearer key (default: LLMOS_API_KEY)", show_default=False)
    ] = None,
    endpoint: Annotated[str, typer.Option(help="chat (/chat/completions) or completions")] = "chat",
    concurrency: Annotated[
        int | None,
        typer.Option(
            help="Closed loop: clients sending back to back (default 1). With --rate: cap on in-flight"
        ),
    ] = None,
    rate: Annotated[
        float | None, typer.Option(help="Open loop: Poisson arrivals at this many requests/s")
    ] = None,
    requests: Annotated[
        int | None, typer.Option("--requests", "-n", help="Requests to send (default 100 without --duration)")
    ] = None,
    duration: Annotated[
        float | None, typer.Option(help="Seconds to keep starting requests (in-flight ones finish)")
    ] = None,
    prompt_tokens: Annotated[int, typer.Option(help="Approximate prompt length in tokens")] = 128,
    max_tokens: Annotated[int, typer.Option(help="Output tokens per request")] = 128,
    ignore_eos: Annotated[
        bool, typer.Option(help="Ask the server to ignore end-of-sequence (exact output lengths)")
    ] = True,
    stream: Annotated[bool, typer.Option(help="Stream responses (SSE); measures TTFT and TPOT")] = True,
    temperature: Annotated[float, typer.Option(help="Sampling temperature")] = 0.0,
    seed: Annotated[int, typer.Option(help="Seed of the prompts and of the arrivals")] = 0,
    timeout: Annotated[float, typer.Option(help="Seconds one request may take")] = 600.0,
    slo_ttft_ms: Annotated[float | None, typer.Option(help="Goodput SLO: time to first token (ms)")] = None,
    slo_tpot_ms: Annotated[float | None, typer.Option(help="Goodput SLO: time per output token (ms)")] = None,
    slo_e2e_ms: Annotated[float | None, typer.Option(help="Goodput SLO: end-to-end latency (ms)")] = None,
    extra_body: Annotated[
        str | None, typer.Option(help="JSON object merged into every request, e.g. '{\"top_k\": 1}'")
    ] = None,
    json_path: Annotated[Path | None, typer.Option("--json", help="Write the full results here")] = None,
    plot_path: Annotated[Path | None, typer.Option("--plot", help="Write a PNG plot here")] = None,
    progress: Annotated[bool, typer.Option(help="Show a progress bar while it runs")] = True,
) -> None:
    """Benchmark an OpenAI-compatible server: TTFT, TPOT, inter-token and end-to-end latency,
    throughput, goodput against SLOs, errors."""
    if endpoint not in ("chat", "completions"):
        raise InvalidRequest("--endpoint must be chat or completions", param="endpoint")
    # The load generator is imported by this command only: the rest of the CLI never needs it.
    from llmos.benchmark.plot import plot_run, pyplot
    from llmos.benchmark.report import summary_table, write_json
    from llmos.benchmark.stats import SLO, summarize
    from llmos.benchmark.workload import Workload
    from llmos.config import load_config

    config = load_config()
    workload = Workload(
        url=url or config.base_url or DEFAULT_URL,
        model=model,
        endpoint=endpoint_name(endpoint),
        api_key=api_key or config.api_key,
        stream=stream,
        prompt_tokens=prompt_tokens,
        max_tokens=max_tokens,
        ignore_eos=ignore_eos,
        temperature=temperature,
        seed=seed,
        concurrency=concurrency if concurrency is not None or rate is not None else 1,
        rate=rate,
        requests=requests,
        duration_s=duration,
        timeout_s=timeout,
        extra_body=_extra_body(extra_body),
    )
    if plot_path is not None:
        pyplot()  # fail before the run, not after it, when matplotlib is missing
    import asyncio  # here, not at the top: every other command would pay for it

    result = asyncio.run(_run(workload, show=progress and err_console.is_terminal))
    summary = summarize(result.records, result.duration_s, SLO(slo_ttft_ms, slo_tpot_ms, slo_e2e_ms))
    out_console.print(summary_table(result, summary))
    if json_path is not None:
        write_json(json_path, result, summary)
        err_console.print(f"results written to {json_path}")
    if plot_path is not None:
        plot_run(plot_path, result, summary)
        err_console.print(f"plot written to {plot_path}")
    if summary.completed == 0:
        err_console.print("[red]no request succeeded[/red]")
        raise typer.Exit(1)
    if result.interrupted:
        raise typer.Exit(130)


def endpoint_name(value: str) -> Endpoint:
    return "chat" if value == "chat" else "completions"


async def _until_interrupted(gen: LoadGenerator) -> BenchResult:
    """Ctrl-C cancels the run: report the requests that had finished, marked as interrupted."""
    import asyncio

    try:
        return await gen.run()
    except asyncio.CancelledError:
        err_console.print("interrupted: reporting the requests that had finished")
        return gen.result(interrupted=True)


async def _run(workload: Workload, *, show: bool) -> BenchResult:
    from llmos.benchmark.loadgen import LoadGenerator

    if not show:
        return await _until_interrupted(LoadGenerator(workload))
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.fields[status]}"),
    )
    with Progress(*columns, console=err_console, transient=True) as bar:
        by_time = workload.requests is None
        total = workload.duration_s if by_time else workload.requests
        task = bar.add_task("benchmarking", total=total, status="")
        started = time.monotonic()
        counts = {"ok": 0, "failed": 0}

        def on_result(record: RequestRecord) -> None:
            counts["ok" if record.ok else "failed"] += 1
            done = min(time.monotonic() - started, total or 0.0) if by_time else sum(counts.values())
            bar.update(task, completed=done, status=f"{counts['ok']} ok, {counts['failed']} failed")

        return await _until_interrupted(LoadGenerator(workload, on_result=on_result))


def register(app: typer.Typer) -> None:
    app.command("bench")(bench)
