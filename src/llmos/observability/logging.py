"""Structured logging: one line per record, as text or JSON, with the request id of the request
that logged it.

The server binds a :class:`RequestLog` to the context of every HTTP request
(:func:`bind_request`); a filter on llmos's handler copies its ``request_id``, ``tenant`` and
``model`` onto each record logged while that request runs (tasks it starts inherit the
context). :func:`configure_logging` installs the handler on the root logger, once, and takes
over uvicorn's loggers so every line of ``llmos serve`` has the same shape.
"""

from __future__ import annotations

import contextvars
import json
import logging
import sys
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import IO, Any, Literal

LogFormat = Literal["text", "json"]

_current: contextvars.ContextVar[RequestLog | None] = contextvars.ContextVar("llmos_request", default=None)

# Attributes every LogRecord has; anything else on a record came from ``extra=`` and is kept.
_STANDARD = frozenset(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {
    "message",
    "asctime",
    "request_id",
    "tenant",
    "model",
    "taskName",
    "color_message",  # uvicorn's ANSI-coloured copy of the message
}
_HANDLER_NAME = "llmos"


@dataclass
class RequestLog:
    """What the logs know of the request being served. Mutable: the kernel fills in the tenant
    and the model once it knows them, and the access log line reads them at the end."""

    request_id: str
    tenant: str | None = None
    model: str | None = None


def bind_request(request_id: str) -> contextvars.Token[RequestLog | None]:
    """Make ``request_id`` the current request of this context; undo with :func:`reset_request`."""
    return _current.set(RequestLog(request_id=request_id))


def reset_request(token: contextvars.Token[RequestLog | None]) -> None:
    _current.reset(token)


def current_request() -> RequestLog | None:
    """The request this code runs for, if any."""
    return _current.get()


def annotate_request(*, tenant: str | None = None, model: str | None = None) -> None:
    """Record who the current request is for and which model serves it (no-op outside a request)."""
    req = _current.get()
    if req is None:
        return
    if tenant is not None:
        req.tenant = tenant
    if model is not None:
        req.model = model


class RequestContextFilter(logging.Filter):
    """Puts ``request_id`` (``-`` outside a request), ``tenant`` and ``model`` on every record."""

    def filter(self, record: logging.LogRecord) -> bool:
        req = _current.get()
        if not hasattr(record, "request_id"):
            record.request_id = req.request_id if req else "-"
        if not hasattr(record, "tenant"):
            record.tenant = req.tenant if req else None
        if not hasattr(record, "model"):
            record.model = req.model if req else None
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ``time`` (UTC, ISO 8601), ``level``, ``logger``, ``message``,
    ``request_id``, ``tenant``/``model`` when known, ``exc`` for exceptions, and every
    ``extra=`` field of the call."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": getattr(record, "request_id", "-"),
        }
        for key in ("tenant", "model"):
            value = getattr(record, key, None)
            if value is not None:
                out[key] = value
        for key, value in record.__dict__.items():
            if key not in _STANDARD and not key.startswith("_"):
                out[key] = value if isinstance(value, str | int | float | bool | None) else str(value)
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        if record.stack_info:
            out["stack"] = self.formatStack(record.stack_info)
        return json.dumps(out, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    """``time level logger [request id]: message``; the id only inside a request."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s%(rid)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        rid = getattr(record, "request_id", "-")
        record.rid = "" if rid in ("-", None) else f" [{rid}]"
        return super().format(record)


def make_handler(fmt: LogFormat, stream: IO[str] | None = None) -> logging.Handler:
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.set_name(_HANDLER_NAME)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    handler.addFilter(RequestContextFilter())
    return handler


def configure_logging(level: str = "INFO", fmt: LogFormat = "text", stream: IO[str] | None = None) -> None:
    """Route every log record (llmos's, uvicorn's, libraries') through one handler in ``fmt``.

    Idempotent: a second call replaces the handler. uvicorn's own handlers are removed so its
    lines share the format, and its access log is silenced (llmos writes its own, with the
    request id and tenant). Raises ValueError for an unknown level name.
    """
    numeric = logging.getLevelName(level.upper())
    if not isinstance(numeric, int):
        raise ValueError(f"unknown log level {level!r}")
    root = logging.getLogger()
    for old in [h for h in root.handlers if h.get_name() == _HANDLER_NAME]:
        root.removeHandler(old)
    root.addHandler(make_handler(fmt, stream))
    root.setLevel(numeric)
    for name in ("uvicorn", "uvicorn.error"):
        lg = logging.getLogger(name)
        lg.handlers.clear()
        lg.propagate = True
        lg.setLevel(numeric)
    access = logging.getLogger("uvicorn.access")
    access.handlers.clear()
    access.propagate = False
    access.disabled = True
    logging.getLogger("alembic").setLevel(max(numeric, logging.WARNING))  # migrations are routine
