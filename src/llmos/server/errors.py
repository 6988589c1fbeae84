"""The one place where errors become HTTP responses.

Every :mod:`llmos.errors` error, a request that fails validation, an unknown route and any
unexpected exception is answered with OpenAI's error body::

    {"error": {"message": ..., "type": ..., "param": ..., "code": ...}}

Routes raise domain errors and never build an error response themselves.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from llmos import errors as e
from llmos.types import JSON

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ErrorMapping:
    status: int
    type: str


# Most specific first: the first class an error is an instance of wins.
_MAPPINGS: tuple[tuple[type[e.LLMOSError], ErrorMapping], ...] = (
    (e.PayloadTooLarge, ErrorMapping(413, "invalid_request_error")),
    (e.InvalidRequest, ErrorMapping(400, "invalid_request_error")),
    (e.NotFound, ErrorMapping(404, "invalid_request_error")),
    (e.Conflict, ErrorMapping(409, "invalid_request_error")),
    (e.IntegrityError, ErrorMapping(502, "upstream_error")),
    (e.SourceUnavailable, ErrorMapping(502, "upstream_error")),
    (e.StorageFull, ErrorMapping(507, "server_error")),
    (e.Unauthorized, ErrorMapping(401, "authentication_error")),
    (e.Forbidden, ErrorMapping(403, "permission_error")),
    (e.BudgetExhausted, ErrorMapping(429, "insufficient_quota")),
    (e.RateLimited, ErrorMapping(429, "rate_limit_error")),
    (e.Overloaded, ErrorMapping(503, "overloaded_error")),
    (e.DeadlineExceeded, ErrorMapping(504, "timeout_error")),
    (e.ResourceExhausted, ErrorMapping(507, "server_error")),
    (e.MissingDependency, ErrorMapping(501, "server_error")),
    (e.EngineDeadError, ErrorMapping(503, "server_error")),
    (e.EngineGenerateError, ErrorMapping(500, "server_error")),
)
_DEFAULT = ErrorMapping(500, "server_error")
ENGINE_RESTART_RETRY_S = 5
"""Retry-After of a 503 ``engine_dead``: the model's engine restarts (reloads) on the next request."""


def mapping_for(exc: e.LLMOSError) -> ErrorMapping:
    """The HTTP status and OpenAI error type for a domain error."""
    for cls, mapping in _MAPPINGS:
        if isinstance(exc, cls):
            return mapping
    return _DEFAULT


def error_body(message: str, type_: str, *, param: str | None = None, code: str | None = None) -> JSON:
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}


def domain_error_body(exc: e.LLMOSError) -> JSON:
    """The OpenAI error body for a domain error (also used for errors inside a stream)."""
    return error_body(exc.message, mapping_for(exc).type, param=exc.param, code=exc.code)


def error_headers(exc: e.LLMOSError) -> dict[str, str]:
    headers: dict[str, str] = {}
    if isinstance(exc, e.RetryLater):
        headers["retry-after"] = str(max(1, math.ceil(exc.retry_after)))
        headers["retry-after-ms"] = str(max(0, int(exc.retry_after * 1000)))
    if isinstance(exc, e.BudgetExhausted):
        headers["x-should-retry"] = "false"
    if isinstance(exc, e.EngineDeadError):
        headers["retry-after"] = str(ENGINE_RESTART_RETRY_S)
    return headers


def domain_error_response(exc: e.LLMOSError) -> JSONResponse:
    mapping = mapping_for(exc)
    if mapping.status >= 500:
        log.warning("request failed: %s: %s", type(exc).__name__, exc.message)
    return JSONResponse(domain_error_body(exc), status_code=mapping.status, headers=error_headers(exc))


def _loc_param(loc: Sequence[Any]) -> str | None:
    parts = [str(p) for p in loc if p not in ("body", "query", "path", "header")]
    return ".".join(parts) or None


def _json_decode_message(error: Any, body: Any) -> str:
    """A body that is not JSON, in words: what is wrong and where (line and column)."""
    pos = error.get("loc", ())[-1] if error.get("loc") else None
    why = str((error.get("ctx") or {}).get("error") or "not valid JSON")
    doc = body.decode("utf-8", errors="replace") if isinstance(body, bytes) else body
    if not isinstance(pos, int) or not isinstance(doc, str):
        return f"the request body is not valid JSON: {why}"
    line = doc.count("\n", 0, pos) + 1
    column = pos - (doc.rfind("\n", 0, pos) + 1) + 1
    return f"the request body is not valid JSON: {why} at line {line}, column {column}"


def validation_error_response(exc: RequestValidationError) -> JSONResponse:
    errs = exc.errors()
    if not errs:
        return JSONResponse(error_body("invalid request", "invalid_request_error"), status_code=400)
    first = errs[0]
    if first.get("type") == "json_invalid":
        message = _json_decode_message(first, exc.body)
        return JSONResponse(
            error_body(message, "invalid_request_error", code="invalid_json"), status_code=400
        )
    param = _loc_param(first.get("loc", ()))
    msg = str(first.get("msg", "invalid value"))
    message = f"{param}: {msg}" if param else msg
    if len(errs) > 1:
        message += f" (and {len(errs) - 1} more error{'s' if len(errs) > 2 else ''})"
    return JSONResponse(
        error_body(message, "invalid_request_error", param=param, code="invalid_value"), status_code=400
    )


def install_error_handlers(app: FastAPI) -> None:
    """Register the handlers that turn every error into the OpenAI error shape."""

    async def on_domain(request: Request, exc: Exception) -> JSONResponse:
        if not isinstance(exc, e.LLMOSError):  # pragma: no cover - registered for LLMOSError only
            raise exc
        if isinstance(exc, e.ModelNotFound) and exc.suggestions:
            # "did you mean" names only models the caller's key may see.
            caller = getattr(request.state, "principal", None)
            allows = getattr(caller, "allows_model", lambda _name: False)
            exc = exc.suggesting_only(allows)
        return domain_error_response(exc)

    async def on_validation(_: Request, exc: Exception) -> JSONResponse:
        if not isinstance(exc, RequestValidationError):  # pragma: no cover
            raise exc
        return validation_error_response(exc)

    async def on_http(_: Request, exc: Exception) -> JSONResponse:
        if not isinstance(exc, StarletteHTTPException):  # pragma: no cover
            raise exc
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code)
        type_ = "invalid_request_error" if exc.status_code < 500 else "server_error"
        return JSONResponse(
            error_body(str(exc.detail), type_, code=code),
            status_code=exc.status_code,
            headers=dict(exc.headers or {}),
        )

    async def on_unexpected(_: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error", exc_info=exc)
        return JSONResponse(
            error_body("internal server error", "server_error", code="internal_error"), status_code=500
        )

    app.add_exception_handler(e.LLMOSError, on_domain)
    app.add_exception_handler(RequestValidationError, on_validation)
    app.add_exception_handler(StarletteHTTPException, on_http)
    app.add_exception_handler(Exception, on_unexpected)
