"""Every route that spends tokens is metered, found by walking the app's routes.

A route spends tokens when its code (or a server function it calls) reaches a token-spending
operation: a kernel method that runs a request on a model (it takes a ``RequestMeta`` or an
``InferenceRequest``, which carries one) or a data
service method that embeds on a caller's behalf (it takes ``spent``). Such a route must carry
the :func:`llmos.server.metering.metered` marker, which gives it limits, budgets and a usage row.
"""

from __future__ import annotations

import inspect
import types
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, get_type_hints

from fastapi import APIRouter, FastAPI
from fastapi.routing import APIRoute

from kernel.fakes import MemoryRegistry, inventory, manifest
from llmos.config import load_config
from llmos.data.service import DataService
from llmos.engine.fake import FakeEngine
from llmos.kernel import Kernel, build_kernel
from llmos.kernel.inference_request import InferenceRequest
from llmos.kernel.types import RequestMeta
from llmos.server import create_app
from llmos.server.metering import is_metered
from llmos.server.routes.deps import KernelDep


def spending_operations() -> set[str]:
    """Names of the kernel's and the data service's token-spending methods, by their signatures."""
    names = set()
    markers = {RequestMeta, InferenceRequest}
    for cls, typed in ((Kernel, True), (DataService, False)):
        for name, fn in inspect.getmembers(cls, inspect.isfunction):
            params = inspect.signature(fn).parameters
            hints = get_type_hints(fn) if typed else {}
            if (typed and markers & set(hints.values())) or (not typed and "spent" in params):
                names.add(name)
    return names


def _code_names(code: types.CodeType) -> Iterator[str]:
    yield from code.co_names
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            yield from _code_names(const)


def reached_names(fn: Callable[..., Any], seen: set[Any] | None = None) -> set[str]:
    """Every name ``fn``'s code uses, following the llmos.server functions it calls."""
    seen = seen if seen is not None else set()
    fn = inspect.unwrap(fn)
    if fn in seen or not hasattr(fn, "__code__"):
        return set()
    seen.add(fn)
    names = set(_code_names(fn.__code__))
    called = [fn.__globals__.get(name) for name in names]
    called += [cell.cell_contents for cell in fn.__closure__ or ()]
    for target in called:
        if inspect.isfunction(target) and target.__module__.startswith("llmos.server"):
            names |= reached_names(target, seen)
    return names


def api_routes(routes: list[Any]) -> Iterator[APIRoute]:
    """Every API route of an app or router, inside included routers too (FastAPI versions that
    include routers lazily keep them as ``original_router``)."""
    for route in routes:
        if isinstance(route, APIRoute):
            yield route
        original = getattr(route, "original_router", None)
        if original is not None:
            yield from api_routes(original.routes)


def unmetered_spenders(app: FastAPI) -> list[str]:
    spending = spending_operations()
    found = []
    for route in api_routes(app.routes):
        if reached_names(route.endpoint) & spending and not is_metered(route.dependencies):
            found.append(f"{sorted(route.methods)} {route.path}")
    return found


def _app(tmp_path: Path) -> FastAPI:
    config = load_config(home=tmp_path / "home", auth="off")
    kernel = build_kernel(
        config,
        registry=MemoryRegistry(tmp_path, [manifest("fake:1")]),
        engine_factory=lambda backend: FakeEngine(),
        inventory=inventory(),
    )
    return create_app(kernel)


def test_the_spending_operations_are_found() -> None:
    assert spending_operations() >= {
        "submit",
        "chat",
        "complete",
        "embed",
        "run_task",
        "add_document",
        "search",
    }


def test_every_token_spending_route_is_metered(tmp_path: Path) -> None:
    app = _app(tmp_path)
    assert unmetered_spenders(app) == []
    routes = list(api_routes(app.routes))
    assert len(routes) > 40
    metered = {route.path for route in routes if is_metered(route.dependencies)}
    assert metered >= {
        "/v1/chat/completions",
        "/v1/completions",
        "/v1/embeddings",
        "/api/tasks/{task}",
        "/api/collections/{collection}/documents",
        "/api/collections/{collection}/search",
        "/api/search",
    }


def test_the_check_catches_a_route_that_is_not_metered(tmp_path: Path) -> None:
    app = _app(tmp_path)
    sneaky = APIRouter()

    async def helper(kernel: Kernel, text: str) -> int:
        meta = RequestMeta(request_id="x", tenant="t")
        return len((await kernel.embed("fake:1", [text], meta)).vectors)

    @sneaky.post("/api/sneaky")
    async def sneaky_route(kernel: KernelDep, text: str) -> int:
        return await helper(kernel, text)

    helper.__module__ = sneaky_route.__module__ = "llmos.server.routes.sneaky"
    app.include_router(sneaky)
    assert unmetered_spenders(app) == ["['POST'] /api/sneaky"]
