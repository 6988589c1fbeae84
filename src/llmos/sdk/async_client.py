"""The asynchronous client: ``llmos.AsyncClient`` (its methods live in ``async_resources.py``, the
same as the synchronous client's, awaited)."""

from __future__ import annotations

from types import TracebackType

import httpx

from llmos.sdk._async import AsyncRunner
from llmos.sdk._core import DEFAULT_TIMEOUT, RetryPolicy, Settings
from llmos.sdk.async_resources import (
    AsyncConversations,
    AsyncData,
    AsyncEmbeddings,
    AsyncModelHandle,
    AsyncModels,
    AsyncSecurity,
    AsyncServerMethods,
    AsyncTasks,
)

__all__ = ["AsyncClient", "AsyncModelHandle", "AsyncModels"]


class AsyncClient(AsyncServerMethods):
    """Talks to an llmos server. Without arguments: ``LLMOS_BASE_URL`` (default
    ``http://127.0.0.1:8470``) and ``LLMOS_API_KEY``. ``tenant``, ``priority`` (0-9) and
    ``deadline_ms`` go with every request (``X-LLMOS-*`` headers); ``retry`` says when a refused
    or failed request is tried again (default: twice, see :class:`RetryPolicy`). Use ``async with``
    or call aclose()."""

    def __init__(
        self,
        base_url: str | None = None,
        api_key: str | None = None,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        transport: httpx.AsyncBaseTransport | None = None,
        retry: RetryPolicy | None = None,
        tenant: str | None = None,
        priority: int | None = None,
        deadline_ms: int | None = None,
    ) -> None:
        settings = Settings.resolve(
            base_url,
            api_key,
            timeout=timeout,
            retry=retry,
            tenant=tenant,
            priority=priority,
            deadline_ms=deadline_ms,
        )
        self.base_url = settings.base_url
        self._r = AsyncRunner(settings, transport)
        self._http = self._r.http
        self.models = AsyncModels(self._r)
        self.security = AsyncSecurity(self._r)
        self.embeddings = AsyncEmbeddings(self._r)
        self.data = AsyncData(self._r)
        self.tasks = AsyncTasks(self._r)
        self.conversations = AsyncConversations(self._r)

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._r.close()
