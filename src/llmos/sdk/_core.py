"""The SDK's one core, without I/O: what a request is, how an answer is read, when to retry.

Every resource method of :class:`~llmos.sdk.Client` and :class:`~llmos.sdk.AsyncClient` builds a
:class:`Call` (one request and how to read its JSON answer), a :class:`Stream` (a streamed
request and how to read each SSE or NDJSON line) or a :class:`Paged` (a listing fetched page by
page) here or in a resource module (``models``, ``security``, ``data``, ...). The two clients
only move bytes: they send what the description says with httpx (sync or async), sleep as
:class:`Attempts` says between tries, and hand the answer back to the description.

Adding a resource (``fine_tuning``, ``cluster``, ...): write its result types and call builders
in ``sdk/<resource>.py`` (importing this module and ``types`` only), then one thin class for it in
``sync_resources.py`` and ``async_resources.py`` (one line a method), and name it in
:data:`RESOURCES`: ``tests/sdk/test_shells.py`` checks that both clients have it, alike.
"""

from __future__ import annotations

import json
import os
import random
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import Field, dataclass, field, fields
from typing import Any, ClassVar, Generic, Self, TypedDict, TypeVar, Unpack
from urllib.parse import quote

import httpx

from llmos.sdk.errors import APIConnectionError, APIStatusError, APITimeoutError, error_class

T = TypeVar("T")

DEFAULT_BASE_URL = "http://127.0.0.1:8470"
"""Where ``llmos serve`` listens by default (llmos.config.DEFAULT_PORT)."""
DEFAULT_TIMEOUT = 600.0
BASE_URL_ENV = "LLMOS_BASE_URL"
API_KEY_ENV = "LLMOS_API_KEY"
TENANT_HEADER = "x-llmos-tenant"
PRIORITY_HEADER = "x-llmos-priority"
DEADLINE_HEADER = "x-llmos-deadline-ms"
IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})

RESOURCES = ("models", "security", "embeddings", "data", "tasks", "conversations", "fine_tuning")
"""The resources each client carries, by attribute name (the same on both)."""


def segment(value: str) -> str:
    """One path segment, quoted (a name with ``/`` or ``..`` cannot change the route)."""
    return quote(value, safe=":@")


# ---- requests ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Call(Generic[T]):
    """One request and how to read its JSON answer (``parse`` gets None for an empty body)."""

    method: str
    path: str
    parse: Callable[[Any], T]
    params: Mapping[str, Any] | None = None
    json: Any = None
    content: bytes | None = None
    files: Mapping[str, tuple[str, bytes]] | None = None
    """Multipart file fields (name → (filename, bytes)), sent with ``form``'s fields."""
    form: Mapping[str, str] | None = None
    timeout: float | None = None
    retry: bool = True
    """False: one try, whatever the answer (a health probe wants the first answer)."""

    def request(self, http: httpx.Client | httpx.AsyncClient) -> httpx.Request:
        return http.build_request(
            self.method,
            self.path,
            params=self.params,
            json=self.json,
            content=self.content,
            files=self.files,
            data=self.form,
            timeout=httpx.USE_CLIENT_DEFAULT if self.timeout is None else self.timeout,
        )

    @property
    def idempotent(self) -> bool:
        return self.method in IDEMPOTENT

    def read(self, response: httpx.Response) -> T:
        """The parsed answer, or the typed error it stands for."""
        return self.parse(check(response))


@dataclass(frozen=True)
class Stream(Generic[T]):
    """A streamed request: each SSE ``data:`` (or NDJSON) line's payload through ``item``; an item
    of None is skipped. An error event raises its typed error."""

    method: str
    path: str
    item: Callable[[Any], T | None]
    json: Any = None
    ndjson: bool = False
    retry: bool = True

    def as_call(self) -> Call[None]:
        return Call(self.method, self.path, lambda _: None, json=self.json, retry=self.retry)

    def line(self, line: str) -> T | None:
        payload = ndjson_data(line) if self.ndjson else sse_data(line)
        return None if payload is None else self.item(payload)


@dataclass(frozen=True)
class Paged(Generic[T]):
    """A listing read page by page (``limit``/``offset``) until a page comes back short."""

    page: Callable[[int, int], Call[list[T]]]
    """(offset, limit) → the call for that page."""
    size: int = 100

    def first(self) -> Call[list[T]]:
        return self.page(0, self.size)

    def after(self, offset: int, got: list[T]) -> Call[list[T]] | None:
        """The next page's call once ``got`` came back from ``offset``; None after the last."""
        return None if len(got) < self.size else self.page(offset + len(got), self.size)


def drain(events: Iterator[T], progress: Callable[[T], None] | None, last: T) -> T:
    """Feed every event to ``progress``; the last one (``last`` when there is none)."""
    for event in events:
        last = event
        if progress is not None:
            progress(event)
    return last


# ---- retries ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class RetryPolicy:
    """When a request is tried again, written once for both clients.

    Tried again, up to ``max_retries`` times: an answer of 429 or 503 (the server admitted
    nothing, so any method may retry) after its ``Retry-After`` when that is at most
    ``max_wait`` seconds (a longer wait, or ``x-should-retry: false``, as a spent budget sends,
    goes back to the caller at once); and an idempotent request that could not reach the
    server, after ``backoff`` doubling with jitter. Timeouts are not retried."""

    max_retries: int = 2
    backoff: float = 0.5
    max_wait: float = 10.0

    def start(self, call: Call[Any]) -> Attempts:
        return Attempts(self, call.retry and self.max_retries > 0, call.idempotent)


@dataclass
class Attempts:
    """One request's tries: each answer or failure says how long to wait before the next."""

    policy: RetryPolicy
    enabled: bool
    idempotent: bool
    done: int = field(default=0)

    def _next(self, wait: float) -> float | None:
        if not self.enabled or self.done >= self.policy.max_retries:
            return None
        self.done += 1
        return wait

    def after_answer(self, response: httpx.Response) -> float | None:
        """Seconds to wait before trying again, or None: the answer is final."""
        if response.status_code not in (429, 503):
            return None
        should = response.headers.get("x-should-retry")
        wait = _seconds(response.headers.get("retry-after"))
        if should == "false" or (should != "true" and (wait is None or wait > self.policy.max_wait)):
            return None
        return self._next(min(wait or 0.0, self.policy.max_wait))

    def after_failure(self, exc: APIConnectionError) -> float:
        """Seconds to wait before trying again; raises ``exc`` when it is final."""
        if isinstance(exc, APITimeoutError) or not self.idempotent:
            raise exc
        wait = self._next(self.policy.backoff * 2**self.done * (0.5 + random.random() / 2))
        if wait is None:
            raise exc
        return wait


def _seconds(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


# ---- configuration ----------------------------------------------------------------------------


class Options(TypedDict, total=False):
    """What a client takes beside its address and key (every one optional)."""

    timeout: float
    """Seconds a request may take (default 600; connecting: at most 10)."""
    retry: RetryPolicy | None
    """When a refused or failed request is tried again (default: :class:`RetryPolicy`)."""
    tenant: str | None
    """``X-LLMOS-Tenant`` on every request: the tenant an admin key (or no key) acts for."""
    priority: int | None
    """``X-LLMOS-Priority`` on every request: its urgency, 0-9 (capped at the tenant's)."""
    deadline_ms: int | None
    """``X-LLMOS-Deadline-Ms`` on every request: how long it may wait and run."""


@dataclass(frozen=True)
class Settings:
    """What a client is built from: the address, the headers every request carries, timeouts."""

    base_url: str
    headers: dict[str, str]
    timeout: httpx.Timeout
    retry: RetryPolicy

    @classmethod
    def resolve(cls, base_url: str | None, api_key: str | None, **options: Unpack[Options]) -> Settings:
        """An explicit address, else ``LLMOS_BASE_URL``, else the default; a key, else
        ``LLMOS_API_KEY`` (the SDK is an edge: it reads its own environment)."""
        url = (base_url or os.environ.get(BASE_URL_ENV) or DEFAULT_BASE_URL).rstrip("/").removesuffix("/v1")
        key = api_key or os.environ.get(API_KEY_ENV) or None
        headers = {"user-agent": "llmos-sdk"}
        if key:
            headers["authorization"] = f"Bearer {key}"
        for name, value in (
            (TENANT_HEADER, options.get("tenant")),
            (PRIORITY_HEADER, options.get("priority")),
            (DEADLINE_HEADER, options.get("deadline_ms")),
        ):
            if value is not None:
                headers[name] = str(value)
        seconds = options.get("timeout", DEFAULT_TIMEOUT)
        return cls(
            base_url=url,
            headers=headers,
            timeout=httpx.Timeout(seconds, connect=min(seconds, 10.0)),  # a dead address fails fast
            retry=options.get("retry") or RetryPolicy(),
        )

    def http(self) -> dict[str, Any]:
        """The keyword arguments of an ``httpx.Client`` or ``httpx.AsyncClient``."""
        return {"base_url": self.base_url, "headers": self.headers, "timeout": self.timeout}


@contextmanager
def transport_errors(base_url: str) -> Iterator[None]:
    """Turn httpx's transport failures into the SDK's typed errors."""
    try:
        yield
    except httpx.TimeoutException as exc:
        raise APITimeoutError(f"{base_url} did not answer in time: {exc}") from exc
    except httpx.TransportError as exc:
        raise APIConnectionError(f"cannot reach the llmos server at {base_url}: {exc}") from exc


# ---- answers ----------------------------------------------------------------------------------


def error_from(status: int, content: bytes, resp_headers: Mapping[str, str] | None = None) -> APIStatusError:
    """The typed error for an error response (OpenAI's body, or anything else)."""
    body: Any = None
    message = f"HTTP {status}"
    code = type_ = param = None
    try:
        body = json.loads(content) if content else None
    except ValueError:
        message = content.decode("utf-8", errors="replace")[:500] or message
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        err = body["error"]
        message = str(err.get("message") or message)
        code, type_, param = err.get("code"), err.get("type"), err.get("param")
    retry_after = _seconds(resp_headers.get("retry-after")) if resp_headers is not None else None
    cls = error_class(status, type_)
    return cls(
        message, status_code=status, code=code, type=type_, param=param, retry_after=retry_after, body=body
    )


def check(response: httpx.Response) -> Any:
    """The JSON of a successful response, or raise the typed error."""
    if response.status_code >= 400:
        raise error_from(response.status_code, response.content, response.headers)
    return response.json() if response.content else None


def sse_data(line: str) -> Any | None:
    """The JSON payload of one SSE ``data:`` line; None for other lines and ``[DONE]``.

    Raises the typed error for an error event.
    """
    if not line.startswith("data:"):
        return None
    data = line[5:].strip()
    if not data or data == "[DONE]":
        return None
    return _payload(data)


def ndjson_data(line: str) -> Any | None:
    line = line.strip()
    if not line:
        return None
    if line.startswith("data:"):
        return sse_data(line)
    return _payload(line)


def _payload(data: str) -> Any:
    payload = json.loads(data)
    if isinstance(payload, dict) and isinstance(payload.get("error"), dict):
        raise error_from(200, data.encode())
    return payload


def rows(parse: Callable[[Any], T], key: str = "data") -> Callable[[Any], list[T]]:
    """A parser for a listing: ``parse`` over ``body[key]``."""
    return lambda body: [parse(x) for x in body[key]]


def nothing(_: Any) -> None:
    return None


class JsonRecord:
    """Base of a frozen dataclass read from a server's JSON object: its fields are taken by name,
    and keys it does not declare are dropped (a newer server may send more)."""

    __dataclass_fields__: ClassVar[dict[str, Field[Any]]]
    """Set by ``@dataclass`` on each subclass."""

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> Self:
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})


def clean(d: Mapping[str, Any]) -> dict[str, Any]:
    """``d`` without its None values (a field not given is not sent)."""
    return {k: v for k, v in d.items() if v is not None}


async def adrain(events: AsyncIterator[T], progress: Callable[[T], None] | None, last: T) -> T:
    """:func:`drain` over an async stream."""
    async for event in events:
        last = event
        if progress is not None:
            progress(event)
    return last
