"""The asynchronous I/O under :class:`~llmos.sdk.AsyncClient`: sends what a ``_core`` description
says with ``httpx.AsyncClient``, sleeps between tries as ``_core.Attempts`` says, and hands the
answer back to the description. Nothing about any endpoint lives here."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, TypeVar

import anyio
import httpx

from llmos.sdk._core import Call, Paged, Settings, Stream, error_from, transport_errors
from llmos.sdk.errors import APIConnectionError

T = TypeVar("T")


class AsyncRunner:
    """Runs calls over one ``httpx.AsyncClient`` (its connection pool)."""

    def __init__(self, settings: Settings, transport: httpx.AsyncBaseTransport | None) -> None:
        self.settings = settings
        self.http = httpx.AsyncClient(**settings.http(), transport=transport)

    async def close(self) -> None:
        await self.http.aclose()

    async def _send(self, call: Call[Any], *, stream: bool = False) -> httpx.Response:
        attempts = self.settings.retry.start(call)
        while True:
            try:
                with transport_errors(self.settings.base_url):
                    response = await self.http.send(call.request(self.http), stream=stream)
            except APIConnectionError as exc:
                wait = attempts.after_failure(exc)
            else:
                if (wait_answer := attempts.after_answer(response)) is None:
                    return response
                wait = wait_answer
                await response.aclose()
            await anyio.sleep(wait)

    async def run(self, call: Call[T]) -> T:
        return call.read(await self._send(call))

    async def stream(self, stream: Stream[T]) -> AsyncIterator[T]:
        response = await self._send(stream.as_call(), stream=True)
        try:
            with transport_errors(self.settings.base_url):
                if response.status_code >= 400:
                    await response.aread()
                    raise error_from(response.status_code, response.content, response.headers)
                async for line in response.aiter_lines():
                    if (item := stream.line(line)) is not None:
                        yield item
        finally:
            await response.aclose()

    async def pages(self, paged: Paged[T]) -> AsyncIterator[T]:
        call: Call[list[T]] | None = paged.first()
        offset = 0
        while call is not None:
            got = await self.run(call)
            for item in got:
                yield item
            call, offset = paged.after(offset, got), offset + len(got)
