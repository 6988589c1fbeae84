"""Audit events for admin routes: one call after the action succeeded."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Mapping
from typing import Any

from llmos.kernel.kernel import Kernel
from llmos.kernel.types import PullEvent
from llmos.security.principal import Principal


async def record(
    kernel: Kernel, principal: Principal, action: str, target: str, detail: Mapping[str, Any] | None = None
) -> None:
    """Append an audit event (actor: the caller's key prefix, or ``anonymous``), off the event loop."""
    await asyncio.to_thread(kernel.security.audit, principal, action, target, detail)


async def when_done(
    events: AsyncGenerator[PullEvent, None], kernel: Kernel, principal: Principal, action: str, target: str
) -> AsyncGenerator[PullEvent, None]:
    """``events`` unchanged; the audit event is written once the last (``done``) event arrives."""
    try:
        async for event in events:
            if event.done:
                await record(
                    kernel, principal, action, target, {"digest": event.digest} if event.digest else None
                )
            yield event
    finally:
        await events.aclose()
