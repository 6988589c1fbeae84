"""Input bounds beyond what the request schemas express.

The body size of requests that announce no length (``Transfer-Encoding: chunked``): a
``Content-Length`` over the limit is refused before reading; a chunked body is read here up to
the limit (one byte more is a PayloadTooLarge, 413), then replayed to the app, so no route ever
reads an unbounded body into memory. And counts the configuration caps (messages, prompts): 400.
"""

from __future__ import annotations

from starlette.types import Message, Receive

from llmos.errors import InvalidRequest, PayloadTooLarge


async def bounded_receive(receive: Receive, limit: int) -> Receive:
    """Read the whole body (at most ``limit`` bytes) and return a ``receive`` that replays it.

    Raises PayloadTooLarge as soon as the body passes ``limit``.
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
            first = {"type": "http.request", "body": b"".join(chunks), "more_body": False}
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
