"""What the sync and async clients share: addresses, request bodies, response parsing."""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import httpx

from llmos.sdk.errors import APIConnectionError, APIStatusError, APITimeoutError, error_class
from llmos.sdk.types import ChatMessage, Generation, Usage

DEFAULT_BASE_URL = "http://127.0.0.1:8470"
"""Where ``llmos serve`` listens by default (llmos.config.DEFAULT_PORT)."""
DEFAULT_TIMEOUT = 600.0
BASE_URL_ENV = "LLMOS_BASE_URL"
API_KEY_ENV = "LLMOS_API_KEY"


def timeout(seconds: float) -> httpx.Timeout:
    """The whole-request timeout, with connecting capped at 10 s (a dead address fails fast)."""
    return httpx.Timeout(seconds, connect=min(seconds, 10.0))


@contextmanager
def transport_errors(base_url: str) -> Iterator[None]:
    """Turn httpx's transport failures into the SDK's typed errors (sync and async code alike)."""
    try:
        yield
    except httpx.TimeoutException as exc:
        raise APITimeoutError(f"{base_url} did not answer in time: {exc}") from exc
    except httpx.TransportError as exc:
        raise APIConnectionError(f"cannot reach the llmos server at {base_url}: {exc}") from exc


def resolve_base_url(base_url: str | None) -> str:
    """An explicit address, else ``LLMOS_BASE_URL``, else the default (the SDK is an edge)."""
    url = base_url or os.environ.get(BASE_URL_ENV) or DEFAULT_BASE_URL
    url = url.rstrip("/")
    return url.removesuffix("/v1")


def resolve_api_key(api_key: str | None) -> str | None:
    return api_key or os.environ.get(API_KEY_ENV) or None


def headers(api_key: str | None) -> dict[str, str]:
    out = {"user-agent": "llmos-sdk"}
    if api_key:
        out["authorization"] = f"Bearer {api_key}"
    return out


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
    retry_after = None
    if resp_headers is not None and resp_headers.get("retry-after"):
        try:
            retry_after = float(resp_headers["retry-after"])
        except ValueError:
            retry_after = None
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
    payload = json.loads(data)
    raise_if_error(payload)
    return payload


def ndjson_data(line: str) -> Any | None:
    line = line.strip()
    if not line:
        return None
    if line.startswith("data:"):
        return sse_data(line)
    payload = json.loads(line)
    raise_if_error(payload)
    return payload


def raise_if_error(payload: Any) -> None:
    if isinstance(payload, dict) and isinstance(payload.get("error"), dict):
        raise error_from(200, json.dumps(payload).encode())


def chat_body(
    model: str, messages: Iterable[ChatMessage], params: Mapping[str, Any], stream: bool
) -> dict[str, Any]:
    body: dict[str, Any] = {"model": model, "messages": list(messages), **params, "stream": stream}
    return body


def completion_body(model: str, prompt: str, params: Mapping[str, Any], stream: bool) -> dict[str, Any]:
    return {"model": model, "prompt": prompt, **params, "stream": stream}


def parse_chat(d: dict[str, Any]) -> Generation:
    choices = d.get("choices") or []
    texts = tuple((c.get("message") or {}).get("content") or "" for c in choices)
    first = choices[0] if choices else {}
    return Generation(
        text=texts[0] if texts else "",
        finish_reason=first.get("finish_reason"),
        usage=Usage.from_json(d.get("usage")),
        model=str(d.get("model", "")),
        id=str(d.get("id", "")),
        choices=texts,
        tool_calls=tuple((first.get("message") or {}).get("tool_calls") or ()),
    )


def parse_completion(d: dict[str, Any]) -> Generation:
    choices = d.get("choices") or []
    texts = tuple(c.get("text") or "" for c in choices)
    first = choices[0] if choices else {}
    return Generation(
        text=texts[0] if texts else "",
        finish_reason=first.get("finish_reason"),
        usage=Usage.from_json(d.get("usage")),
        model=str(d.get("model", "")),
        id=str(d.get("id", "")),
        choices=texts,
    )


def delta_text(payload: dict[str, Any]) -> str:
    """The first choice's new text in a chat or completion chunk."""
    for choice in payload.get("choices") or []:
        if choice.get("index", 0) != 0:
            continue
        if "delta" in choice:
            return str((choice.get("delta") or {}).get("content") or "")
        return str(choice.get("text") or "")
    return ""
