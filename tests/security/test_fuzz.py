"""A schemathesis run over the whole OpenAPI spec, with an admin key, over fake engines: no 5xx."""

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
from llmos.kernel import build_kernel
from llmos.security.service import local_admin
from llmos.server import create_app

pytestmark = pytest.mark.integration

EXPECTED_5XX = {501}
"""501: a feature whose optional dependency is not installed (an honest answer, not a failure)."""


@pytest.fixture
def fuzz_app(tmp_path: Path) -> tuple[Any, str]:
    cfg = load_config(home=tmp_path / "home", auth="required", n_slots=4, n_ctx=4 * 256, max_body_bytes=65536)

    def engine_factory(backend: str) -> Engine:
        return FakeEngine()

    kernel = build_kernel(
        cfg,
        registry=MemoryRegistry(tmp_path, [manifest("fake:1")], [manifest("cat:1")]),
        engine_factory=engine_factory,
        inventory=inventory(),
    )
    _, key = kernel.security.create_key(local_admin(cfg), admin=True)
    return create_app(kernel, drain_timeout=0.5), key


def test_no_server_errors(fuzz_app: tuple[Any, str]) -> None:
    """Every operation, positive and negative data, six examples each (about a minute on two cores)."""
    app, key = fuzz_app
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    failures: list[str] = []
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) > 10
    for operation in operations:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):

            @given(case=operation.as_strategy(generation_mode=mode))
            @settings(
                max_examples=6,
                deadline=None,
                derandomize=True,
                suppress_health_check=list(HealthCheck),
                database=None,
            )
            def run(case: Any) -> None:
                response = case.call(headers={"authorization": f"Bearer {key}"})
                if response.status_code >= 500 and response.status_code not in EXPECTED_5XX:
                    failures.append(
                        f"{case.method} {case.formatted_path} -> {response.status_code}: {response.text[:300]}"
                    )

            run()
    assert not failures, "\n".join(failures[:20])
