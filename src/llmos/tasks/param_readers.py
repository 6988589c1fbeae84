"""Reading a task's ``params``: each reader names the offending field in its InvalidRequest."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from llmos.errors import InvalidRequest


def check_known(params: Mapping[str, Any], known: Sequence[str], task: str) -> None:
    """Raise InvalidRequest for a parameter ``task`` does not take (a typo must not pass silently)."""
    unknown = sorted(set(params) - set(known))
    if unknown:
        allowed = ", ".join(known) or "none"
        raise InvalidRequest(
            f"task '{task}' does not take parameter {unknown[0]!r}; it takes: {allowed}",
            param=f"params.{unknown[0]}",
        )


def text_param(
    params: Mapping[str, Any], name: str, *, required: bool = False, max_chars: int = 100
) -> str | None:
    value = params.get(name)
    if value is None:
        if required:
            raise InvalidRequest(f"params.{name} is required", param=f"params.{name}")
        return None
    if not isinstance(value, str) or not value.strip():
        raise InvalidRequest(f"params.{name} must be a non-empty string", param=f"params.{name}")
    if len(value) > max_chars:
        raise InvalidRequest(f"params.{name} may be at most {max_chars} characters", param=f"params.{name}")
    return value.strip()


def int_param(params: Mapping[str, Any], name: str, *, default: int, low: int, high: int) -> int:
    value = params.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise InvalidRequest(
            f"params.{name} must be an integer between {low} and {high}", param=f"params.{name}"
        )
    return value


def bool_param(params: Mapping[str, Any], name: str, *, default: bool) -> bool:
    value = params.get(name, default)
    if not isinstance(value, bool):
        raise InvalidRequest(f"params.{name} must be true or false", param=f"params.{name}")
    return value


def labels_param(
    params: Mapping[str, Any],
    name: str,
    *,
    required: bool,
    default: Sequence[str] = (),
    min_count: int = 1,
    max_count: int = 64,
    max_chars: int = 100,
) -> list[str]:
    """A list of distinct, non-empty strings (whitespace trimmed), in the caller's order."""
    value = params.get(name)
    if value is None:
        if required:
            raise InvalidRequest(f"params.{name} is required", param=f"params.{name}")
        return list(default)
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise InvalidRequest(f"params.{name} must be a list of strings", param=f"params.{name}")
    labels = [v.strip() for v in value]
    if any(not v for v in labels):
        raise InvalidRequest(f"params.{name} must not contain empty strings", param=f"params.{name}")
    if any(len(v) > max_chars for v in labels):
        raise InvalidRequest(
            f"each of params.{name} may be at most {max_chars} characters", param=f"params.{name}"
        )
    if len({v.casefold() for v in labels}) != len(labels):
        raise InvalidRequest(f"params.{name} must not repeat a value", param=f"params.{name}")
    if not min_count <= len(labels) <= max_count:
        raise InvalidRequest(
            f"params.{name} must have between {min_count} and {max_count} values", param=f"params.{name}"
        )
    return labels
