"""Input bounds beyond what the request schemas express.

The body size of requests that announce no length (``Transfer-Encoding: chunked``): a
``Content-Length`` over the limit is refused before reading; a chunked body is read here up to
the limit (one byte more is a PayloadTooLarge, 413), then replayed to the app, so no route ever
reads an unbounded body into memory. And counts the configuration caps (messages, prompts): 400.

JSON bodies are checked for lone UTF-16 surrogates (``"\ud800"``): valid JSON, but not Unicode,
so no string holding one can be encoded, stored or tokenized; it is a 400 before any route runs.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Callable
from typing import Any

from starlette.types import Message, Receive

from llmos.errors import InvalidRequest, PayloadTooLarge

CHECK_ON_LOOP_BYTES = 256 * 1024
"""Bodies up to this size are checked on the event loop (microseconds); bigger ones in a thread."""
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F][0-9a-fA-F]{2}")


async def bounded_receive(
    receive: Receive, limit: int, *, check: Callable[[bytes], None] | None = None
) -> Receive:
    """Read the whole body (at most ``limit`` bytes) and return a ``receive`` that replays it.

    Raises PayloadTooLarge as soon as the body passes ``limit``, and whatever ``check`` raises
    for the whole body.
    """
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            # The client went away: hand the app the disconnect at once.
            first: Message | None = message
            break
        body = message.get("body", b"")
        size += len(body)
        if size > limit:
            raise PayloadTooLarge(f"request body is over the limit of {limit} bytes", param="body")
        chunks.append(body)
        if not message.get("more_body", False):
            whole = b"".join(chunks)
            if check is not None and len(whole) > CHECK_ON_LOOP_BYTES:
                await asyncio.to_thread(check, whole)  # a big body: not on the event loop
            elif check is not None:
                check(whole)
            first = {"type": "http.request", "body": whole, "more_body": False}
            break
    pending: list[Message] = [first] if first is not None else []

    async def replay() -> Message:
        if pending:
            return pending.pop()
        return await receive()

    return replay


def check_count(param: str, count: int, limit: int) -> None:
    """Raise InvalidRequest (400, naming ``param``) when ``count`` items are over ``limit``."""
    if count > limit:
        raise InvalidRequest(f"{param} has {count} items; at most {limit} are allowed", param=param)


def check_unicode(body: bytes) -> None:
    """Raise InvalidRequest (400) when JSON ``body`` holds a string with a lone surrogate.

    Only bodies that escape a surrogate at all are decoded (paired ones, emoji written as
    ``\ud83d\ude00``, are fine); a body that is not JSON is left to the route's parsing."""
    if not _SURROGATE_ESCAPE.search(body):
        return
    try:
        value = json.loads(body)
    except ValueError:
        return
    bad = _lone_surrogate(value)
    if bad is not None:
        raise InvalidRequest(
            f"{bad or 'the body'}: a string holds a lone UTF-16 surrogate (like \\ud800), which "
            "is not a Unicode character; send UTF-8 text or a complete surrogate pair",
            param=bad or "body",
        )


def _lone_surrogate(value: Any, path: str = "") -> str | None:
    """The path of the first string (or key) in ``value`` that is not valid Unicode, else None."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return path
        return None
    if isinstance(value, list):
        for i, item in enumerate(value):
            found = _lone_surrogate(item, f"{path}[{i}]")
            if found is not None:
                return found
    elif isinstance(value, dict):
        for key, item in value.items():
            where = f"{path}.{key}" if path else str(key)
            found = _lone_surrogate(key, where) if isinstance(key, str) else None
            found = found if found is not None else _lone_surrogate(item, where)
            if found is not None:
                return found.encode("utf-8", "backslashreplace").decode("utf-8")
    return None
