"""llmos: an operating system for large language models.

``llmos.Client`` and ``llmos.AsyncClient`` (the SDK) are imported on first use, so that
``import llmos`` stays cheap for the CLI and the worker processes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from llmos.version import __version__

__all__ = ["AsyncClient", "Client", "__version__"]

if TYPE_CHECKING:
    from llmos.sdk import AsyncClient, Client


def __getattr__(name: str) -> Any:
    if name in ("Client", "AsyncClient"):
        from llmos import sdk

        return getattr(sdk, name)
    raise AttributeError(f"module 'llmos' has no attribute {name!r}")
