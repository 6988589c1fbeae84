"""Out of the box (no scheduler setting), a client's ``service_tier`` decides who is served first."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from llmos.config import load_config
from polling import until

from .conftest import ServeFactory

pytestmark = pytest.mark.anyio

MSG = [{"role": "user", "content": "hi"}]


async def test_priority_is_served_ahead_of_default_and_flex_by_default(
    serve: ServeFactory, tmp_path: Path
) -> None:
    s = await serve(config=load_config(home=tmp_path / "h", n_slots=1, n_ctx=2048), step_cost_s=0.01)
    finished: list[str] = []

    async def ask(name: str, tier: str, max_tokens: int) -> None:
        body = {"model": "fake:1", "messages": MSG, "max_tokens": max_tokens, "service_tier": tier}
        r = await s.client.post("/v1/chat/completions", json=body)
        assert r.status_code == 200, r.text
        finished.append(name)

    def count(what: str) -> int:
        loaded = s.kernel.loaded("fake:1")
        return int(getattr(loaded.core, what)) if loaded is not None else -1

    hog = asyncio.create_task(ask("default", "default", 100))
    await until(lambda: count("running") == 1, what="the default request running")
    flex = asyncio.create_task(ask("flex", "flex", 3))
    await until(lambda: count("queued") == 1, what="the flex request queued")
    await ask("priority", "priority", 3)
    await asyncio.gather(hog, flex)
    # priority preempted the running default request; that one resumed before the queued flex.
    assert finished == ["priority", "default", "flex"]
    assert (await s.kernel.loaded("fake:1").core.stats()).policy == "tiered"  # type: ignore[union-attr]
