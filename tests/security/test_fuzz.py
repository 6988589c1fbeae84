"""Schemathesis over the app's own OpenAPI, auth on, over fake engines.

Every operation with an admin key (no 5xx), and the OpenAI routes with a tenant's key that has
limits, where every rejected request (4xx) must also leave no usage row that charges it, and
no row for a tenant but the key's. Bounded examples per operation; the whole run has a timeout,
so a request that hangs fails it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode

from kernel.fakes import MemoryRegistry, inventory, manifest
from llmos.config import load_config
from llmos.engine.base import Engine
from llmos.engine.fake import FakeEngine
from llmos.kernel import Kernel, build_kernel
from llmos.security.service import local_admin
from llmos.server import create_app

pytestmark = pytest.mark.integration

EXPECTED_5XX = {501}
"""501: a feature whose optional dependency is not installed (an honest answer, not a failure)."""


@pytest.fixture
def fuzz_app(tmp_path: Path) -> tuple[Any, Kernel, str, str]:
    cfg = load_config(home=tmp_path / "home", auth="required", n_slots=4, n_ctx=4 * 256, max_body_bytes=65536)

    def engine_factory(backend: str) -> Engine:
        return FakeEngine()

    kernel = build_kernel(
        cfg,
        registry=MemoryRegistry(tmp_path, [manifest("fake:1")], [manifest("cat:1")]),
        engine_factory=engine_factory,
        inventory=inventory(),
    )
    admin = local_admin(cfg)
    _, admin_key = kernel.security.create_key(admin, admin=True)
    kernel.security.create_tenant(admin, "acme", plan="free", limits={"max_tokens_per_request": 64})
    _, tenant_key = kernel.security.create_key(admin, tenant="acme", scopes=["inference", "embeddings"])
    return create_app(kernel, drain_timeout=0.5), kernel, admin_key, tenant_key


def _fuzz(app: Any, key: str, *, paths: str = "/", examples: int = 6) -> list[tuple[str, Any]]:
    """Call every operation under ``paths`` with positive and negative data; returns each case's
    description and response."""
    auth = {"authorization": f"Bearer {key}"}
    schema = schemathesis.openapi.from_asgi("/openapi.json", app, headers=auth)
    operations = [r.ok() for r in schema.get_all_operations() if r.ok().path.startswith(paths)]
    assert operations
    seen: list[tuple[str, Any]] = []
    for operation in operations:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):

            @given(case=operation.as_strategy(generation_mode=mode))
            @settings(
                max_examples=examples,
                deadline=None,
                derandomize=True,
                suppress_health_check=list(HealthCheck),
                database=None,
            )
            def run(case: Any) -> None:
                response = case.call(headers=auth)
                seen.append((f"{case.method} {case.formatted_path}", response))

            run()
    return seen


def _request_id(response: Any) -> str | None:
    value = response.headers.get("x-request-id")
    return value[0] if isinstance(value, list) else value


def _server_errors(seen: list[tuple[str, Any]]) -> list[str]:
    return [
        f"{what} -> {r.status_code}: {r.text[:300]}"
        for what, r in seen
        if r.status_code >= 500 and r.status_code not in EXPECTED_5XX
    ]


@pytest.mark.timeout(600)
def test_no_server_errors(fuzz_app: tuple[Any, Kernel, str, str]) -> None:
    """Every operation with an admin key, six examples of each kind (about a minute on two cores)."""
    app, _, admin_key, _ = fuzz_app
    seen = _fuzz(app, admin_key)
    assert len({what.split(" ")[0] + what.split(" ")[1][:12] for what, _ in seen}) > 10
    failures = _server_errors(seen)
    assert not failures, "\n".join(failures[:20])


@pytest.mark.timeout(300)
def test_openai_routes_with_a_tenant_key(fuzz_app: tuple[Any, Kernel, str, str]) -> None:
    app, kernel, _, tenant_key = fuzz_app
    seen = _fuzz(app, tenant_key, paths="/v1/", examples=10)
    failures = _server_errors(seen)
    assert not failures, "\n".join(failures[:20])
    assert any(r.status_code == 200 for _, r in seen) and any(400 <= r.status_code < 500 for _, r in seen)
    rows: dict[str, list[Any]] = {}
    for _, row in kernel.security.store.list_usage(limit=100_000):
        rows.setdefault(row.request_id, []).append(row)
    assert {row.tenant for booked in rows.values() for row in booked} <= {"acme"}
    charged = [
        f"{what} -> {r.status_code}: {[(u.prompt_tokens, u.completion_tokens) for u in rows[rid]]}"
        for what, r in seen
        if 400 <= r.status_code < 500
        and (rid := _request_id(r)) in rows
        and any(u.prompt_tokens or u.completion_tokens for u in rows[rid])
    ]
    assert not charged, "rejected requests were charged:\n" + "\n".join(charged[:20])
