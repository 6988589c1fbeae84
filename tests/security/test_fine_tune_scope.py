"""The ``fine-tune`` scope guards every door of fine-tuning: each route of OpenAI's files and
fine-tuning API answers 403 to a key without it (before looking anything up), and serves a key
with it."""

from __future__ import annotations

import re

import pytest
from starlette.routing import Route

from llmos.server.routes import openai_files, openai_fine_tuning

from .conftest import ServeFactory

pytestmark = pytest.mark.anyio


def _concrete(path: str) -> str:
    """A route's path with its parameters filled in (ids that would be a 404 if looked up)."""
    return re.sub(r"\{(\w+)(:\w+)?\}", lambda m: "ftjob-1" if m.group(1) == "job_id" else "file-1", path)


async def test_every_fine_tuning_route_needs_the_fine_tune_scope(secured: ServeFactory) -> None:
    s = await secured()
    without = await s.new_tenant("acme", scopes=["inference", "data", "models:read"])
    with_scope = await s.new_tenant("globex", scopes=["inference", "fine-tune"])
    routes = [
        (method, _concrete(r.path))
        for r in (*openai_files.router.routes, *openai_fine_tuning.router.routes)
        if isinstance(r, Route)
        for method in sorted(r.methods or ())
        if method != "HEAD"
    ]
    assert len(routes) >= 11  # 5 file routes, 6 fine-tuning ones
    upload = {"files": {"file": ("t.jsonl", b"{}")}, "data": {"purpose": "fine-tune"}}
    for method, path in [*routes, ("GET", "/v1/fine_tuning/jobs/ftjob-1/events?stream=true")]:
        kwargs = upload if (method, path) == ("POST", "/v1/files") else {}
        if method == "POST" and path == "/v1/fine_tuning/jobs":
            kwargs = {"json": {"model": "fake:1", "training_file": "file-1"}}
        r = await s.client.request(method, path, headers=s.auth(without), **kwargs)  # type: ignore[arg-type]
        assert r.status_code == 403, (method, path, r.status_code, r.text)
        assert "fine-tune" in r.json()["error"]["message"], (method, path)
    listed = await s.client.get("/v1/fine_tuning/jobs", headers=s.auth(with_scope))
    files = await s.client.get("/v1/files", headers=s.auth(with_scope))
    assert (listed.status_code, files.status_code) == (200, 200)
    assert listed.json()["data"] == files.json()["data"] == []
