"""``llmos finetune``: fine-tuning jobs (create, list, show, logs --follow, cancel)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from llmos.cli.errors import handle_errors
from llmos.cli.runtime import require_server

if TYPE_CHECKING:
    from llmos.sdk.fine_tuning import FineTuningEvent

out = Console(highlight=False, soft_wrap=True)

finetune_app = typer.Typer(
    help="Fine-tune models with LoRA: jobs scheduled beside inference.", rich_markup_mode=None
)


def create(
    model: Annotated[str, typer.Option("--model", help="Base model, e.g. smollm2:135m")],
    data: Annotated[Path, typer.Option("--data", exists=True, dir_okay=False, help="Training JSONL")],
    validation: Annotated[
        Path | None, typer.Option("--validation", exists=True, dir_okay=False, help="Validation JSONL")
    ] = None,
    epochs: Annotated[int | None, typer.Option("--epochs", min=1, max=100)] = None,
    merge: Annotated[
        bool, typer.Option("--merge", help="Register a full merged GGUF, not an adapter")
    ] = False,
    suffix: Annotated[str | None, typer.Option("--suffix", help="Result name: MODEL-ft-SUFFIX")] = None,
) -> None:
    """Upload the data and queue a job."""
    with require_server() as client:
        job = client.fine_tuning.create(
            model, data, validation=validation, epochs=epochs, merge=merge, suffix=suffix
        )
    out.print(f"{job.id} {job.status} (follow it with 'llmos finetune logs {job.id} --follow')")


def list_() -> None:
    """List your jobs, newest first."""
    with require_server() as client:
        jobs = client.fine_tuning.list(limit=100)
    table = Table(box=None)
    for col in ("ID", "MODEL", "STATUS", "RESULT", "TOKENS"):
        table.add_column(col)
    for j in jobs:
        table.add_row(
            j.id,
            j.model,
            j.status + (" (paused)" if j.paused else ""),
            j.fine_tuned_model or "",
            str(j.trained_tokens or ""),
        )
    out.print(table)


def show(job_id: Annotated[str, typer.Argument()]) -> None:
    """A job's state, hyperparameters, progress and checkpoints."""
    with require_server() as client:
        job = client.fine_tuning.get(job_id)
        checkpoints = client.fine_tuning.checkpoints(job_id)
    out.print(f"{job.id}  {job.status}{' (paused for inference)' if job.paused else ''}")
    out.print(f"  base      {escape(job.model)}")
    out.print(f"  result    {escape(job.fine_tuned_model or '-')}")
    if job.error:
        out.print(f"  error     {escape(job.error)}")
    if job.progress:
        out.print(f"  progress  {_progress_line(job.progress)}")
    hp = {k: v for k, v in job.hyperparameters.items() if k not in ("n_epochs",)}
    out.print("  hyperparameters " + ", ".join(f"{k}={v}" for k, v in sorted(hp.items())))
    for c in checkpoints:
        out.print(f"  checkpoint step {c.step_number}: {c.metrics}")


def logs(
    job_id: Annotated[str, typer.Argument()],
    follow: Annotated[bool, typer.Option("--follow", "-f", help="Stream until the job ends")] = False,
) -> None:
    """The job's events; with --follow, a live loss line and progress bar until it ends."""
    with require_server() as client:
        events = client.fine_tuning.follow(job_id) if follow else iter(client.fine_tuning.events(job_id))
        for e in events:
            out.print(_event_line(e))


def cancel(job_id: Annotated[str, typer.Argument()]) -> None:
    """Cancel a queued or running job (nothing is registered; its files are removed)."""
    with require_server() as client:
        job = client.fine_tuning.cancel(job_id)
    out.print(f"{job.id} {job.status}")


def _progress_line(p: dict[str, object]) -> str:
    step, total = int(str(p.get("step") or 0)), max(int(str(p.get("total_steps") or 1)), 1)
    filled = round(20 * step / total)
    bar = "#" * filled + "-" * (20 - filled)
    parts = [f"[{bar}] {step}/{total}"]
    for key, label in (
        ("train_loss", "loss"),
        ("valid_loss", "val"),
        ("tokens_per_second", "tok/s"),
        ("eta_seconds", "eta s"),
    ):
        value = p.get(key)
        if isinstance(value, int | float):
            parts.append(f"{label} {value:.3f}" if "loss" in key else f"{label} {value:.0f}")
    return "  ".join(parts)


def _event_line(e: FineTuningEvent) -> str:
    if e.type == "metrics" and e.data:
        return _progress_line(e.data)
    return f"[{e.level}] {escape(e.message)}"


def register(app: typer.Typer) -> None:
    finetune_app.command("create")(handle_errors(create))
    finetune_app.command("list")(handle_errors(list_))
    finetune_app.command("show")(handle_errors(show))
    finetune_app.command("logs")(handle_errors(logs))
    finetune_app.command("cancel")(handle_errors(cancel))
    app.add_typer(finetune_app, name="finetune")
