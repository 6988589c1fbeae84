"""How the CLI writes sizes, ages and counts.

Sizes are binary everywhere llmos shows them (the CLI, the console, the API docs): KiB, MiB,
GiB, TiB, each 1024 of the one before, so that ``llmos list``, ``llmos ps`` and ``/ui`` give
the same figure for the same bytes.
"""

from __future__ import annotations

from datetime import UTC, datetime

_UNITS = ("B", "KiB", "MiB", "GiB", "TiB")


def human_size(n: int | None) -> str:
    """``n`` bytes in binary units: ``512 B``, ``94 KiB``, ``93.8 MiB``, ``1.25 GiB``; ``-`` for
    an unknown (None) size."""
    if n is None:
        return "-"
    size, i = float(n), 0
    while size >= 1024 and i < len(_UNITS) - 1:
        size, i = size / 1024, i + 1
    if i <= 1:
        return f"{size:.0f} {_UNITS[i]}"
    return f"{size:.1f} {_UNITS[i]}" if i == 2 else f"{size:.2f} {_UNITS[i]}"


def human_age(when: datetime | None, now: datetime | None = None) -> str:
    if when is None:
        return "-"
    seconds = max(0, int(((now or datetime.now(UTC)) - when).total_seconds()))
    for span, unit in (
        (86400 * 365, "year"),
        (86400 * 30, "month"),
        (86400, "day"),
        (3600, "hour"),
        (60, "minute"),
    ):
        if seconds >= span:
            count = seconds // span
            return f"{count} {unit}{'s' if count > 1 else ''} ago"
    return "just now"


def human_count(n: int) -> str:
    if n >= 1_000_000_000:
        return f"{n / 1e9:.1f}B"
    if n >= 1_000_000:
        return f"{n / 1e6:.0f}M"
    return str(n)
