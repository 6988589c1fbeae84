"""Secrets never reach a log line: redaction at the logging source.

:func:`install_redaction` wraps the log record factory, so every record made anywhere in the
process (llmos, uvicorn, httpx, third parties) has ``sk-llmos-…`` keys and ``Authorization``
header values replaced before any handler, formatter or test capture sees it; the same
:class:`RedactingFilter` is also attached to the ``llmos`` and ``uvicorn`` loggers.
"""

from __future__ import annotations

import logging
import re
import threading
from typing import Any

from llmos.security.keys import KEY_PATTERN

REDACTED = "[redacted]"
_AUTH_HEADER = re.compile(
    r"(?i)((?:proxy-)?authorization|x-api-key|api[_-]key|admin[_-]key)(['\"]?\s*[:=,]\s*\(?\s*b?['\"]?)"
    r"((?:bearer|basic|token)\s+)?[^\s'\",)]+"
)
_BEARER = re.compile(r"(?i)\bbearer\s+[A-Za-z0-9._~+/=\-]{8,}")


def redact(text: str) -> str:
    """``text`` with llmos keys, bearer tokens and authorization header values replaced."""
    if not text:
        return text
    text = KEY_PATTERN.sub(REDACTED, text)
    text = _AUTH_HEADER.sub(lambda m: f"{m.group(1)}{m.group(2)}{m.group(3) or ''}{REDACTED}", text)
    return _BEARER.sub(f"Bearer {REDACTED}", text)


def _needs_redaction(text: str) -> bool:
    lower = text.lower()
    return "sk-llmos-" in lower or "authorization" in lower or "bearer" in lower or "key" in lower


def _redact_value(value: Any) -> Any:
    return redact(value) if isinstance(value, str) and _needs_redaction(value) else value


def redact_record(record: logging.LogRecord) -> None:
    """Redact ``record``'s message, arguments and traceback now, so nothing later sees a secret.

    String arguments are redacted in place (formatters such as uvicorn's access log unpack them);
    if the formatted message would still carry a secret (inside a non-string argument, or split
    between the template and an argument), the message is formatted now and its arguments dropped.
    """
    if record.args:
        if isinstance(record.args, tuple):
            record.args = tuple(_redact_value(a) for a in record.args)
        elif isinstance(record.args, dict):
            record.args = {k: _redact_value(v) for k, v in record.args.items()}
        try:
            message = record.getMessage()
        except Exception:  # a broken format string: leave it for logging's own error report
            message = ""
        if _needs_redaction(message):
            clean = redact(message)
            if clean != message:
                record.msg, record.args = clean, None
    elif isinstance(record.msg, str):
        record.msg = _redact_value(record.msg)
    if record.exc_info and not record.exc_text:
        text = logging.Formatter().formatException(record.exc_info)
        record.exc_text = _redact_value(text)
    elif record.exc_text:
        record.exc_text = _redact_value(record.exc_text)


class RedactingFilter(logging.Filter):
    """A filter that redacts every record it sees (and drops none)."""

    def filter(self, record: logging.LogRecord) -> bool:
        redact_record(record)
        return True


_LOCK = threading.Lock()
_FILTER = RedactingFilter()
REDACTED_LOGGERS = ("llmos", "uvicorn", "uvicorn.access", "uvicorn.error", "httpx", "fastapi")


def install_redaction() -> None:
    """Redact secrets in every log record of this process. Idempotent."""
    with _LOCK:
        current = logging.getLogRecordFactory()
        if not getattr(current, "_llmos_redacting", False):

            def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
                record = current(*args, **kwargs)
                redact_record(record)
                return record

            factory._llmos_redacting = True  # type: ignore[attr-defined]
            logging.setLogRecordFactory(factory)
        for name in REDACTED_LOGGERS:
            logger = logging.getLogger(name)
            if _FILTER not in logger.filters:
                logger.addFilter(_FILTER)
