"""Budget periods on the UTC calendar: a day, an ISO week (from Monday), a month."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta


def period_start(now: datetime, period: str) -> datetime:
    day = now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    if period == "day":
        return day
    if period == "week":
        return day - timedelta(days=day.weekday())
    return day.replace(day=1)


def period_end(now: datetime, period: str) -> datetime:
    start = period_start(now, period)
    if period == "day":
        return start + timedelta(days=1)
    if period == "week":
        return start + timedelta(days=7)
    return (start + timedelta(days=32)).replace(day=1)
