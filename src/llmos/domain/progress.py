"""Progress reports from long registry operations (pull, import).

The CLI draws them as a bar; the HTTP API streams them as pull events.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Progress:
    """One report. ``completed``/``total`` are bytes when known; ``digest`` names the blob."""

    phase: str
    """``fetching <pkg>``, ``downloading``, ``extracting``, ``verifying``, ``writing manifest``, ``success``."""
    completed: int | None = None
    total: int | None = None
    digest: str | None = None

    @property
    def status(self) -> str:
        return self.phase


ProgressFn = Callable[[Progress], None]


def report(
    progress: ProgressFn | None,
    phase: str,
    completed: int | None = None,
    total: int | None = None,
    digest: str | None = None,
) -> None:
    """Send a report if anyone listens."""
    if progress is not None:
        progress(Progress(phase=phase, completed=completed, total=total, digest=digest))
