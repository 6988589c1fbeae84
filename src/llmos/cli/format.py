"""How the CLI writes sizes, ages and counts.

Sizes are binary everywhere llmos shows them (the CLI, the console, the docs): KiB, MiB, GiB,
TiB, each 1024 of the one before, written like the console's ``bytes()`` (``ui/js/dom.js``), so
that ``llmos list``, ``llmos ps`` and ``/ui`` give the same figure for the same bytes.
"""

from __future__ import annotations

from datetime import UTC, datetime

_UNITS = ("B", "KiB", "MiB", "GiB", "TiB")


def human_size(n: int | None) -> str:
    """``n`` bytes in binary units, one decimal below 10 (as the console's ``bytes()`` writes
    them): ``512 B``, ``94 MiB``, ``1.3 GiB``, ``23 GiB``; ``-`` for an unknown (None) size."""
    if n is None:
        return "-"
    size, i = float(n), 0
    while size >= 1024 and i < len(_UNITS) - 1:
        size, i = size / 1024, i + 1
    return f"{size:.{1 if i and size < 10 else 0}f} {_UNITS[i]}"


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
