"""A rich progress bar fed by the server's pull and import progress (the SDK's ``Progress``)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    ProgressColumn,
    Task,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
)
from rich.text import Text

from llmos.cli.format import human_size

if TYPE_CHECKING:
    from llmos.sdk import Progress as Report

ProgressFn = Callable[["Report"], None]


class TransferSpeedColumn(ProgressColumn):
    """Bytes per second in binary units (rich's own column counts in decimal ones)."""

    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        return Text("?" if speed is None else f"{human_size(int(speed))}/s", style="progress.data.speed")


def transfer_columns() -> tuple[ProgressColumn, ...]:
    """Bytes done of the total and the speed, in binary units like every size llmos shows."""
    return (DownloadColumn(binary_units=True), TransferSpeedColumn())


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
        *transfer_columns(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=console, transient=True) as bar:
        task: TaskID = bar.add_task("starting", total=None)

        def update(report: Report) -> None:
            bar.update(task, description=report.status, total=report.total, completed=report.completed or 0)

        yield update
