"""Every error llmos raises on purpose, as one tree.

The server maps these to HTTP in exactly one place (``server/errors.py``) and the CLI
to messages in one place (``cli/errors.py``); nothing else decides a status code.

    LLMOSError
    ├── InvalidRequest            bad input from a caller (HTTP 400)
    │   ├── InvalidModelName      a name that is not ``family:tag`` / ``name@sha256:<64 hex>``
    │   ├── InvalidModelFile      not a GGUF, truncated, unreadable header
    │   └── PayloadTooLarge       over a configured bound (HTTP 413)
    ├── NotFound                  unknown model, blob, tenant, key, job... (HTTP 404)
    │   └── ModelNotFound
    ├── Conflict                  the thing exists already / is in use (HTTP 409)
    ├── IntegrityError            a checksum mismatch: bytes are not what they claim (HTTP 502 on pull)
    ├── SourceUnavailable         a model source cannot be reached (HTTP 502)
    ├── StorageFull               the disk or the blob store is full (HTTP 507)
    ├── Unauthorized              missing or bad key (HTTP 401)
    ├── Forbidden                 key lacks a scope (HTTP 403)
    ├── RetryLater                refused for now; carries retry_after (seconds)
    │   ├── RateLimited           over a rate (HTTP 429)
    │   │   └── BudgetExhausted   token budget spent; retrying will not help (HTTP 429)
    │   └── Overloaded            the server is full (HTTP 503)
    ├── DeadlineExceeded          a request's deadline passed (HTTP 504)
    ├── ResourceExhausted         a model cannot fit the memory budget (HTTP 507)
    ├── MissingDependency         an optional extra this operation needs is not installed (HTTP 501)
    └── EngineError               the inference engine failed
        ├── EngineGenerateError   one request failed; the engine lives on (HTTP 500)
        └── EngineDeadError       the worker died; in-flight requests fail (HTTP 503)
"""

from __future__ import annotations

from collections.abc import Callable


class LLMOSError(Exception):
    """Base of every deliberate llmos error. ``param`` names the offending input, if any."""

    code: str = "llmos_error"

    def __init__(self, message: str, *, param: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param


class InvalidRequest(LLMOSError):
    code = "invalid_request"


class InvalidModelName(InvalidRequest):
    code = "invalid_model_name"


class InvalidModelFile(InvalidRequest):
    code = "invalid_model_file"


class PayloadTooLarge(InvalidRequest):
    code = "payload_too_large"


class NotFound(LLMOSError):
    code = "not_found"


class ModelNotFound(NotFound):
    """``suggestions``: known names close to the one asked for, offered as "did you mean"."""

    code = "model_not_found"

    def __init__(self, message: str, *, param: str | None = None, suggestions: tuple[str, ...] = ()) -> None:
        self.plain_message = message
        self.suggestions = suggestions
        if suggestions:
            message += "; did you mean " + " or ".join(repr(s) for s in suggestions) + "?"
        super().__init__(message, param=param)

    def suggesting_only(self, allowed: Callable[[str], bool]) -> ModelNotFound:
        """The same error with only the suggestions ``allowed`` keeps (a caller may not learn of
        the others)."""
        keep = tuple(s for s in self.suggestions if allowed(s))
        return ModelNotFound(self.plain_message, param=self.param, suggestions=keep)


class Conflict(LLMOSError):
    code = "conflict"


class IntegrityError(LLMOSError):
    code = "checksum_mismatch"


class SourceUnavailable(LLMOSError):
    code = "source_unavailable"


class StorageFull(LLMOSError):
    code = "storage_full"


class Unauthorized(LLMOSError):
    code = "invalid_api_key"


class Forbidden(LLMOSError):
    code = "forbidden"


class RetryLater(LLMOSError):
    """Refused for now: ``retry_after`` seconds from now the same request may be admitted."""

    code = "retry_later"

    def __init__(self, message: str, *, retry_after: float, param: str | None = None) -> None:
        super().__init__(message, param=param)
        self.retry_after = retry_after


class RateLimited(RetryLater):
    code = "rate_limit_exceeded"


class BudgetExhausted(RateLimited):
    code = "insufficient_quota"


class Overloaded(RetryLater):
    code = "server_overloaded"


class DeadlineExceeded(LLMOSError):
    code = "deadline_exceeded"


class ResourceExhausted(LLMOSError):
    code = "insufficient_memory"


class MissingDependency(LLMOSError):
    code = "missing_dependency"


class EngineError(LLMOSError):
    code = "engine_error"


class EngineGenerateError(EngineError):
    code = "generation_failed"


class EngineDeadError(EngineError):
    code = "engine_dead"


class ConfigError(ValueError):
    """Invalid settings: the message has one line per bad setting (variable, value, accepted forms).
    Not an :class:`LLMOSError`: no request caused it; the CLI and ``llmos serve`` report it in one
    line per setting and exit with code 2."""
