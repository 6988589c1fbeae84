"""The synchronous I/O under :class:`~llmos.sdk.Client`: sends what a ``_core`` description
says with ``httpx.Client``, sleeps between tries as ``_core.Attempts`` says, and hands the answer
back to the description. Nothing about any endpoint lives here."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any, TypeVar

import httpx

from llmos.sdk._core import Call, Paged, Settings, Stream, error_from, transport_errors
from llmos.sdk.errors import APIConnectionError

T = TypeVar("T")


class Runner:
    """Runs calls over one ``httpx.Client`` (its connection pool)."""

    def __init__(self, settings: Settings, transport: httpx.BaseTransport | None) -> None:
        self.settings = settings
        self.http = httpx.Client(**settings.http(), transport=transport)

    def close(self) -> None:
        self.http.close()

    def _send(self, call: Call[Any], *, stream: bool = False) -> httpx.Response:
        attempts = self.settings.retry.start(call)
        while True:
            try:
                with transport_errors(self.settings.base_url):
                    response = self.http.send(call.request(self.http), stream=stream)
            except APIConnectionError as exc:
                wait = attempts.after_failure(exc)
            else:
                if (wait_answer := attempts.after_answer(response)) is None:
                    return response
                wait = wait_answer
                response.close()
            time.sleep(wait)

    def run(self, call: Call[T]) -> T:
        return call.read(self._send(call))

    def stream(self, stream: Stream[T]) -> Iterator[T]:
        response = self._send(stream.as_call(), stream=True)
        try:
            with transport_errors(self.settings.base_url):
                if response.status_code >= 400:
                    response.read()
                    raise error_from(response.status_code, response.content, response.headers)
                for line in response.iter_lines():
                    if (item := stream.line(line)) is not None:
                        yield item
        finally:
            response.close()

    def pages(self, paged: Paged[T]) -> Iterator[T]:
        call: Call[list[T]] | None = paged.first()
        offset = 0
        while call is not None:
            got = self.run(call)
            yield from got
            call, offset = paged.after(offset, got), offset + len(got)
