"""Keep-alive durations with Ollama's meaning.

A keep-alive says how long a model stays resident after its last request ends:

* a duration string: ``"5m"``, ``"30s"``, ``"1h"``, ``"1h30m"``, ``"250ms"`` (Go syntax);
* a number (or numeric string) of seconds;
* ``0`` (or ``"0"``, ``"0s"``): unload right after the request;
* any negative value (``-1``, ``"-1m"``): keep forever.

Parsed once into seconds as a float, ``math.inf`` meaning forever.
"""

from __future__ import annotations

import math
import re

from llmos.errors import InvalidRequest

FOREVER = math.inf

_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")

KeepAliveInput = str | int | float


def parse_keep_alive(value: KeepAliveInput) -> float:
    """Seconds to stay resident after the last request (``math.inf``: forever, 0: unload at once).

    Raises InvalidRequest (param ``keep_alive``) for anything else.
    """
    if isinstance(value, bool):
        raise InvalidRequest("keep_alive must be a duration or a number of seconds", param="keep_alive")
    seconds = float(value) if isinstance(value, int | float) else _parse_text(value.strip())
    if math.isnan(seconds):
        raise InvalidRequest("keep_alive is not a number", param="keep_alive")
    return FOREVER if seconds < 0 else seconds


def _parse_text(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        pass
    sign = -1.0 if text.startswith("-") else 1.0
    body = text.lstrip("+-")
    pos, total = 0, 0.0
    for match in _PART.finditer(body):
        if match.start() != pos:
            break
        total += float(match.group(1)) * _UNITS[match.group(2)]
        pos = match.end()
    if not body or pos != len(body):
        raise InvalidRequest(
            f"keep_alive {text!r} is not a duration: use e.g. '5m', '30s', '1h', a number of seconds, "
            "0 to unload after the request or -1 to keep forever",
            param="keep_alive",
        )
    return sign * total


def format_keep_alive(seconds: float) -> str:
    """A short human form: ``forever``, ``0s``, ``5m``, ``1h30m``, ``2.5s``."""
    if math.isinf(seconds):
        return "forever"
    if seconds != int(seconds):
        return f"{seconds:g}s"
    whole = int(seconds)
    h, rem = divmod(whole, 3600)
    m, s = divmod(rem, 60)
    out = (f"{h}h" if h else "") + (f"{m}m" if m else "") + (f"{s}s" if s else "")
    return out or "0s"
