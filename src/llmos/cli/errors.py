"""The one place llmos errors become CLI messages and exit codes.

Every command is wrapped by :func:`handle_errors` (``cli/app.py`` wraps each registered
command): a deliberate llmos error, or an SDK error carrying the server's, prints one line on
stderr (what went wrong and how to fix it) and exits with the code below; nothing else in the
CLI decides an exit code.
"""

from __future__ import annotations

import functools
import logging
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, ParamSpec, TypeVar, cast

import typer
from rich.console import Console
from rich.markup import escape

from llmos import errors as e
from llmos.errors import ConfigError

if TYPE_CHECKING:
    from types import ModuleType

    from llmos.sdk import errors as sdk

log = logging.getLogger(__name__)

P = ParamSpec("P")
R = TypeVar("R")

EXIT_CODES: tuple[tuple[type[e.LLMOSError], int], ...] = (
    (e.InvalidRequest, 2),
    (e.NotFound, 3),
    (e.Conflict, 4),
    (e.IntegrityError, 5),
    (e.SourceUnavailable, 6),
    (e.StorageFull, 7),
    (e.Unauthorized, 8),
    (e.Forbidden, 8),
    (e.RateLimited, 9),
    (e.Overloaded, 9),
    (e.ResourceExhausted, 10),
    (e.DeadlineExceeded, 11),
    (e.EngineError, 12),
)
"""First match wins (subclasses before their bases where it matters); anything else exits 1."""
EXIT_INTERRUPTED = 130
EXIT_CONFIG = 2
"""An invalid ``LLMOS_*`` setting (or config file value): bad input, like a bad argument."""

stderr = Console(stderr=True, highlight=False, soft_wrap=True)


_STATUS_CODES = {400: 2, 413: 2, 422: 2, 401: 8, 403: 8, 404: 3, 409: 4, 429: 9, 502: 6, 504: 11, 507: 7}
"""A server's answer (through the SDK) exits like the llmos error it stands for."""


_STREAMED = {
    "invalid_request_error": 400,
    "authentication_error": 401,
    "permission_error": 403,
    "rate_limit_error": 429,
    "insufficient_quota": 429,
    "upstream_error": 502,
    "timeout_error": 504,
}
"""The status an error event's OpenAI ``type`` stands for (the server's ``server/errors.py``)."""


def _sdk_errors() -> ModuleType | None:
    """The SDK's errors module if a command has used the SDK (else no SDK error can be raised):
    so that a command that never talks to a server never imports the SDK (httpx) either."""
    return sys.modules.get("llmos.sdk.errors")


def _handled() -> tuple[type[Exception], ...]:
    sdk_errors = _sdk_errors()
    return (e.LLMOSError,) if sdk_errors is None else (e.LLMOSError, sdk_errors.LLMOSClientError)


def exit_code(exc: e.LLMOSError | sdk.LLMOSClientError) -> int:
    sdk_errors = _sdk_errors()
    if sdk_errors is not None and isinstance(exc, sdk_errors.APIConnectionError):
        return 6
    if sdk_errors is not None and isinstance(exc, sdk_errors.APIStatusError):
        status = exc.status_code
        if status == 200:  # an error event inside a streamed answer: its type says what it was
            status = _STREAMED.get(exc.type or "", 500)
            if str(exc.code or "").endswith("not_found"):
                status = 404
        return _STATUS_CODES.get(status, 1)
    for cls, code in EXIT_CODES:
        if isinstance(exc, cls):
            return code
    return 1


def message(exc: e.LLMOSError | sdk.LLMOSClientError) -> str:
    return exc.message or str(exc) or type(exc).__name__


def handle_errors(fn: Callable[P, R]) -> Callable[P, R]:
    """Run a command; map llmos errors (and Ctrl-C) to a message on stderr and an exit code."""

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return fn(*args, **kwargs)
        except _handled() as caught:
            exc = cast("e.LLMOSError | sdk.LLMOSClientError", caught)
            log.debug("command failed", exc_info=True)
            stderr.print(f"[bold red]error:[/] {escape(message(exc))}")
            raise typer.Exit(exit_code(exc)) from None
        except ConfigError as exc:
            report_config_error(exc)
            raise typer.Exit(EXIT_CONFIG) from None
        except KeyboardInterrupt:
            stderr.print("[yellow]interrupted[/]; nothing was left half-written")
            raise typer.Exit(EXIT_INTERRUPTED) from None

    return wrapper


def report_config_error(exc: ConfigError) -> None:
    """One line on stderr per invalid setting (no traceback)."""
    for line in str(exc).splitlines():
        stderr.print(f"[bold red]error:[/] {escape(line)}")
