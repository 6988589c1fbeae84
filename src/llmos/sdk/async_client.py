"""The asynchronous client: ``llmos.AsyncClient`` (its methods live in ``async_resources.py``:
the synchronous client's, awaited)."""

from __future__ import annotations

from types import TracebackType
from typing import Unpack

import httpx

from llmos.sdk._async import AsyncRunner
from llmos.sdk._core import Options, Settings
from llmos.sdk.async_resources import AsyncModelHandle, AsyncModels, AsyncServerMethods

__all__ = ["AsyncClient", "AsyncModelHandle", "AsyncModels"]


class AsyncClient(AsyncServerMethods):
    """The same API as :class:`~llmos.sdk.Client`, awaited (streams are async iterators). Use
    ``async with`` or call aclose()."""

    def __init__(
        self,
        base_url: str | None = None,
        api_key: str | None = None,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        **options: Unpack[Options],
    ) -> None:
        self._connect(AsyncRunner(Settings.resolve(base_url, api_key, **options), transport))

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._r.close()
