"""The synchronous client: ``llmos.Client`` (its methods live in ``sync_resources.py``)."""

from __future__ import annotations

from types import TracebackType
from typing import Unpack

import httpx

from llmos.sdk._core import Options, Settings
from llmos.sdk._sync import Runner
from llmos.sdk.sync_resources import ModelHandle, Models, ServerMethods

__all__ = ["Client", "ModelHandle", "Models"]


class Client(ServerMethods):
    """Talks to an llmos server. Without arguments: ``LLMOS_BASE_URL`` (default
    ``http://127.0.0.1:8470``) and ``LLMOS_API_KEY``. ``options`` (see ``Options``): ``timeout``,
    ``retry``, and ``tenant``, ``priority``, ``deadline_ms`` sent with every request. Use as a
    context manager or call close()."""

    def __init__(
        self,
        base_url: str | None = None,
        api_key: str | None = None,
        *,
        transport: httpx.BaseTransport | None = None,
        **options: Unpack[Options],
    ) -> None:
        self._connect(Runner(Settings.resolve(base_url, api_key, **options), transport))

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        self._r.close()
