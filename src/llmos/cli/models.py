"""Registry commands: ``llmos pull``, ``list``, ``show``, ``rm``, ``cp``, ``import``.

Each command asks the server's registry through the SDK (``llmos serve`` must run, here or at
``LLMOS_BASE_URL``); rendering lives here, behaviour in the server's :mod:`llmos.registry`.
``import`` sends the file's absolute path, which the server reads: it is meant for a server on
this machine.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from llmos.cli.format import human_age, human_count, human_size
from llmos.cli.progress_bar import progress_bar
from llmos.cli.runtime import require_server

if TYPE_CHECKING:
    from llmos.cli.progress_bar import ProgressFn
    from llmos.sdk import Client, Model, ModelDetail

out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False)


def _json(m: Model) -> dict[str, Any]:
    d = asdict(m)
    d.pop("versions", None)
    return d


def _when(m: Model) -> datetime | None:
    try:
        return datetime.fromisoformat(m.created_at) if m.created_at else None
    except ValueError:
        return None


def _fetch(name: str, quiet: bool, run: Callable[[Client, ProgressFn], object]) -> ModelDetail:
    """Run a pull or an import (``run(client, progress)``) with a bar unless ``quiet``; the
    model it made, as the server shows it."""
    with require_server() as client, progress_bar(err, enabled=not quiet) as bar:
        run(client, bar)
        return client.models.show(name)


def pull(
    name: Annotated[
        str, typer.Argument(help="A catalog name (smollm2:135m) or hf.co/<org>/<repo>:<file>.gguf")
    ],
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar")] = False,
) -> None:
    """Download a model into the server's registry, verifying its checksum."""
    m = _fetch(name, quiet, lambda client, bar: client.models.pull(name, progress=bar))
    out.print(f"pulled {escape(m.name)} sha256:{m.digest[:12]} ({human_size(m.size)})")


def import_(
    path: Annotated[Path, typer.Argument(help="A local .gguf file")],
    name: Annotated[str, typer.Option("--name", "-n", help="The name to register it under, family:tag")],
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar")] = False,
) -> None:
    """Register a GGUF file on this machine (a new file under an existing name becomes its newest
    version); the server reads it, so it must run on this machine."""
    where = str(path.expanduser().absolute())
    m = _fetch(name, quiet, lambda client, bar: client.models.import_file(where, name, progress=bar))
    parent = f" (previous version {m.parent[:12]})" if m.parent else ""
    out.print(f"imported {escape(m.name)} sha256:{m.digest[:12]} ({human_size(m.size)}){parent}")


def list_(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON")] = False,
) -> None:
    """List the models in the server's registry."""
    with require_server() as client:
        models = client.models.list()
    if as_json:
        out.print_json(json.dumps([_json(m) for m in models]))
        return
    table = Table(box=None, pad_edge=False)
    for col in ("NAME", "DIGEST", "SIZE", "QUANTIZATION", "MODIFIED"):
        table.add_column(col)
    for m in models:
        table.add_row(
            escape(m.name), m.digest[:12], human_size(m.size), m.quantization or "-", human_age(_when(m))
        )
    out.print(table)


def _local_path(m: Model) -> Path:
    """The model's file (a GGUF blob) or folder (a multi-file model) under this machine's
    LLMOS_HOME. Raises NotFound when it is not there (a server on another machine, say)."""
    from llmos.config import load_config
    from llmos.errors import NotFound

    paths = load_config().paths
    found = paths.blobs / f"sha256-{m.digest}" if m.format == "gguf" else paths.models / f"sha256-{m.digest}"
    if not found.exists():
        raise NotFound(
            f"{m.name} is not stored under {paths.home} on this machine; set LLMOS_HOME to the server's home"
        )
    return found


def template_origin(m: ModelDetail) -> str:
    """Where a model's chat template comes from, in words."""
    source = m.chat_template_source
    if source == "file":
        return "from the model file"
    if source == "catalog":
        return "from llmos's catalog (the model file has none)"
    if source == "guessed":
        return f"guessed: {m.chat_template_guess or 'ChatML'} (the model file has none)"
    if m.format != "gguf":
        return "- (an embedding model)"
    return "from the model file" if m.chat_template else "none in the file: guessed at load"


def show(
    name: Annotated[str, typer.Argument(help="family:tag or family@sha256:<digest>")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON")] = False,
    template: Annotated[bool, typer.Option("--template", help="Print only the chat template")] = False,
    path: Annotated[
        bool, typer.Option("--path", help="Print only where the model's file (or folder) is on this machine")
    ] = False,
) -> None:
    """Show a model's metadata, chat template, default parameters and versions."""
    with require_server() as client:
        m = client.models.show(name)
    if path:
        out.print(str(_local_path(m)), markup=False, highlight=False)
        return
    versions = m.versions
    if as_json:
        out.print_json(json.dumps({**_json(m), "versions": [_json(v) for v in versions]}))
        return
    if template:
        out.print(escape(m.chat_template or ""))
        return
    rows = [
        ("name", m.name),
        ("digest", f"sha256:{m.digest}"),
        ("format", m.format),
        ("size", human_size(m.size)),
        ("architecture", m.architecture or "-"),
        ("parameters", human_count(m.parameter_count) if m.parameter_count else "-"),
        ("quantization", m.quantization or "-"),
        ("context length", str(m.context_length or "-")),
        ("chat template", template_origin(m)),
        ("license", m.license or "-"),
        ("source", m.source or "-"),
        ("parent", f"sha256:{m.parent}" if m.parent else "-"),
        ("created", str(m.created_at or "-")[:19]),
    ]
    table = Table(box=None, show_header=False, pad_edge=False)
    table.add_column(style="bold", no_wrap=True)
    table.add_column(overflow="fold")
    for key, value in rows:
        table.add_row(key, escape(value))
    out.print(table)
    if m.lineage:
        _print_lineage(m.lineage, m.adapter_of)
    if m.parameters:
        out.print("\n[bold]default parameters[/]")
        for k, v in sorted(m.parameters.items()):
            out.print(f"  {escape(k)} {escape(json.dumps(v))}")
    if m.chat_template_source == "guessed":
        err.print(
            f"[yellow]warning:[/] {escape(m.name)}'s file carries no chat template and the catalog has none "
            f"for it: llmos guessed the {escape(m.chat_template_guess or 'ChatML')} format, "
            "and answers may be poor"
        )
    if m.chat_template:
        out.print("\n[bold]chat template[/]")
        out.print(escape(m.chat_template))
    out.print("\n[bold]versions[/]")
    for v in versions:
        mark = "*" if v.digest == m.digest else " "
        out.print(
            f" {mark} {escape(v.name.split(':', 1)[0])}@sha256:{v.digest}  {human_size(v.size)}  {human_age(_when(v))}"
            + (f"  (parent {v.parent[:12]})" if v.parent else "")
        )


def rm(
    names: Annotated[
        list[str], typer.Argument(help="Names to remove (family:tag or family@sha256:<digest>)")
    ],
) -> None:
    """Remove models; a blob is deleted once no model references it."""
    with require_server() as client:
        for name in names:
            client.models.delete(name)
            out.print(f"deleted {escape(name)}")


def cp(
    src: Annotated[str, typer.Argument(help="Existing model")],
    dst: Annotated[str, typer.Argument(help="New name, family:tag")],
) -> None:
    """Give a model a second name (no bytes are copied)."""
    with require_server() as client:
        m = client.models.copy(src, dst)
    out.print(f"copied {escape(src)} to {escape(m.name)}")


def register(app: typer.Typer) -> None:
    app.command("pull")(pull)
    app.command("list")(list_)
    app.command("ls", hidden=True)(list_)
    app.command("show")(show)
    app.command("rm")(rm)
    app.command("cp")(cp)
    app.command("import")(import_)


def _print_lineage(lineage: dict[str, Any], adapter_of: str | None) -> None:
    """A fine-tune's making: what it was trained from, with what, and how far its losses fell."""
    hp = lineage.get("hyperparameters") or {}
    metrics = lineage.get("metrics") or {}
    served = (
        f"LoRA adapter on sha256:{adapter_of[:12]} (runs on the base's engine core)"
        if adapter_of
        else "merged weights (a full model)"
    )
    rows = [
        ("base model", f"{lineage.get('base_model', '-')}"),
        ("base digest", f"sha256:{lineage.get('base_digest', '')}"),
        ("dataset digest", f"sha256:{lineage.get('training_dataset_digest', '')}"),
        ("validation digest", _sha(lineage.get("validation_dataset_digest"))),
        ("job", str(lineage.get("job_id", "-"))),
        ("served as", served),
        ("hyperparameters", ", ".join(f"{k}={v}" for k, v in sorted(hp.items())) or "-"),
        ("final losses", _losses(metrics)),
    ]
    out.print("\n[bold]lineage[/]")
    table = Table(box=None, show_header=False, pad_edge=False)
    table.add_column(style="bold", no_wrap=True)
    table.add_column(overflow="fold")
    for key, value in rows:
        table.add_row(f"  {key}", escape(value))
    out.print(table)


def _sha(digest: object) -> str:
    return f"sha256:{digest}" if digest else "-"


def _losses(metrics: dict[str, Any]) -> str:
    parts = [
        f"{label} {metrics[key]:.4f}"
        for key, label in (("train_loss", "training"), ("valid_loss", "validation"))
        if isinstance(metrics.get(key), int | float)
    ]
    if isinstance(metrics.get("trained_tokens"), int):
        parts.append(f"{metrics['trained_tokens']} tokens trained")
    return ", ".join(parts) or "-"
