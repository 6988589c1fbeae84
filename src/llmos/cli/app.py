"""The ``llmos`` root command. Each area registers its commands; errors are mapped in
``cli/errors.py``, applied here to every command."""

from __future__ import annotations

import logging
from typing import Annotated

import typer

from llmos import __version__
from llmos.cli import apps, bench, cluster, datasets, docs, finetune, models, run, runtime, security, serve
from llmos.cli.errors import EXIT_CONFIG, handle_errors, report_config_error
from llmos.errors import ConfigError

app = typer.Typer(
    name="llmos",
    help="llmos: an operating system for language models.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # plain help: typer's rich help costs a third of `llmos --help`
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"llmos {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit")
    ] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log what happens (to stderr)")] = False,
) -> None:
    """llmos: pull, run and serve language models."""
    if verbose:
        logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")


for area in (models, serve, run, runtime, cluster, bench, apps, security, docs, datasets, finetune):
    area.register(app)
for command in app.registered_commands:
    if command.callback is not None:
        command.callback = handle_errors(command.callback)


def main() -> None:
    try:
        app()
    except ConfigError as exc:  # settings read outside a command's own error handling
        report_config_error(exc)
        raise SystemExit(EXIT_CONFIG) from None
