"""The synchronous client: ``llmos.Client`` (its methods live in ``sync_resources.py``)."""

from __future__ import annotations

from types import TracebackType

import httpx

from llmos.sdk._core import DEFAULT_TIMEOUT, RetryPolicy, Settings
from llmos.sdk._sync import Runner
from llmos.sdk.sync_resources import (
    Conversations,
    Data,
    Embeddings,
    ModelHandle,
    Models,
    Security,
    ServerMethods,
    Tasks,
)

__all__ = ["Client", "ModelHandle", "Models"]


class Client(ServerMethods):
    """Talks to an llmos server. Without arguments: ``LLMOS_BASE_URL`` (default
    ``http://127.0.0.1:8470``) and ``LLMOS_API_KEY``. ``tenant``, ``priority`` (0-9) and
    ``deadline_ms`` go with every request (``X-LLMOS-*`` headers); ``retry`` says when a refused
    or failed request is tried again (default: twice, see :class:`RetryPolicy`). Use as a context
    manager or call close()."""

    def __init__(
        self,
        base_url: str | None = None,
        api_key: str | None = None,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        transport: httpx.BaseTransport | None = None,
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
        self._r = Runner(settings, transport)
        self._http = self._r.http
        self.models = Models(self._r)
        self.security = Security(self._r)
        self.embeddings = Embeddings(self._r)
        self.data = Data(self._r)
        self.tasks = Tasks(self._r)
        self.conversations = Conversations(self._r)

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        self._r.close()
