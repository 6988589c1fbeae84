"""``llmos datasets``: fine-tuning datasets (JSONL) on the server."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from llmos.cli.errors import handle_errors
from llmos.cli.runtime import require_server

out = Console(highlight=False, soft_wrap=True)

datasets_app = typer.Typer(
    help="Fine-tuning datasets: upload (validated line by line), list, remove.", rich_markup_mode=None
)


def add(
    name: Annotated[str, typer.Argument(help="Dataset name (uploading it again makes a new version)")],
    path: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="A JSONL file")],
) -> None:
    """Upload a JSONL dataset in chat ({"messages": [...]}) or prompt/completion form."""
    with require_server() as client:
        ds = client.data.upload_dataset(name, path)
    out.print(
        f"uploaded {escape(ds.name)} v{ds.version}: {ds.lines} {ds.format} examples, {ds.tokens} tokens, "
        f"sha256:{ds.digest[:12]}"
    )


def list_() -> None:
    """List datasets with their sizes, line and token counts."""
    with require_server() as client:
        items = client.data.list_datasets()
    table = Table(box=None)
    for col in ("ID", "NAME", "VERSION", "FORMAT", "SIZE", "LINES", "TOKENS", "DIGEST"):
        table.add_column(col)
    for d in items:
        table.add_row(
            str(d.id),
            d.name,
            str(d.version),
            d.format,
            str(d.size),
            str(d.lines),
            str(d.tokens),
            d.digest[:12],
        )
    out.print(table)


def rm(dataset_id: Annotated[int, typer.Argument(help="Dataset id (see 'llmos datasets list')")]) -> None:
    """Remove a dataset."""
    with require_server() as client:
        gone = client.data.delete_dataset(dataset_id)
    out.print(f"removed {escape(gone.name)} v{gone.version}")


def register(app: typer.Typer) -> None:
    datasets_app.command("add")(handle_errors(add))
    datasets_app.command("list")(handle_errors(list_))
    datasets_app.command("rm")(handle_errors(rm))
    app.add_typer(datasets_app, name="datasets")
