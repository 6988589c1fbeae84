"""A rich progress bar fed by registry progress reports."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

if TYPE_CHECKING:
    from llmos.registry.progress import Progress as Report
    from llmos.registry.progress import ProgressFn


@contextmanager
def progress_bar(console: Console, *, enabled: bool = True) -> Iterator[ProgressFn]:
    """A callback drawing reports as a bar on ``console`` (a no-op when not enabled, or when the
    console is not a terminal: logs and pipes get the final line only)."""
    if not enabled or not console.is_terminal:
        yield lambda _report: None
        return
    columns = (
        TextColumn("{task.description:<24}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=console, transient=True) as bar:
        task: TaskID = bar.add_task("starting", total=None)

        def update(report: Report) -> None:
            bar.update(task, description=report.phase, total=report.total, completed=report.completed or 0)

        yield update
