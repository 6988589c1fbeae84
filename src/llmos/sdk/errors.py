"""Typed errors of the llmos SDK; each carries what the server said.

    LLMOSClientError
    ├── APIConnectionError        the server cannot be reached
    │   └── APITimeoutError       it did not answer in time
    └── APIStatusError            the server answered with an error (status, message, code, type, param)
        ├── BadRequestError          400, 413, 422
        ├── AuthenticationError      401
        ├── PermissionDeniedError    403
        ├── NotFoundError            404
        ├── ConflictError            409
        ├── RateLimitError           429 (retry_after)
        └── ServerError              5xx
            └── ServiceUnavailableError  503 (retry_after)

An error event inside a stream raises the class its ``type`` implies, with status 200.
"""

from __future__ import annotations

from typing import Any


class LLMOSClientError(Exception):
    """Base of every error the SDK raises."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class APIConnectionError(LLMOSClientError):
    pass


class APITimeoutError(APIConnectionError):
    pass


class APIStatusError(LLMOSClientError):
    def __init__(
        self,
        message: str,
        *,
        status_code: int,
        code: str | None = None,
        type: str | None = None,
        param: str | None = None,
        retry_after: float | None = None,
        body: Any = None,
    ) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.code = code
        self.type = type
        self.param = param
        self.retry_after = retry_after
        self.body = body

    def __str__(self) -> str:
        code = f" [{self.code}]" if self.code else ""
        return f"{self.message} (HTTP {self.status_code}{code})"


class BadRequestError(APIStatusError):
    pass


class AuthenticationError(APIStatusError):
    pass


class PermissionDeniedError(APIStatusError):
    pass


class NotFoundError(APIStatusError):
    pass


class ConflictError(APIStatusError):
    pass


class RateLimitError(APIStatusError):
    pass


class ServerError(APIStatusError):
    pass


class ServiceUnavailableError(ServerError):
    pass


_BY_STATUS: dict[int, type[APIStatusError]] = {
    400: BadRequestError,
    413: BadRequestError,
    422: BadRequestError,
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    409: ConflictError,
    429: RateLimitError,
    503: ServiceUnavailableError,
}
_BY_TYPE: dict[str, type[APIStatusError]] = {
    "invalid_request_error": BadRequestError,
    "authentication_error": AuthenticationError,
    "permission_error": PermissionDeniedError,
    "rate_limit_error": RateLimitError,
    "insufficient_quota": RateLimitError,
    "overloaded_error": ServiceUnavailableError,
}


def error_class(status_code: int, type_: str | None = None) -> type[APIStatusError]:
    if status_code in _BY_STATUS:
        return _BY_STATUS[status_code]
    if status_code >= 500:
        return ServerError
    if status_code == 200 and type_ is not None:
        return _BY_TYPE.get(type_, ServerError)
    return APIStatusError
