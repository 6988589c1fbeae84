"""The two shells stay one API: every resource and method of ``Client`` is on ``AsyncClient``
with the same parameters (awaited where it returns a value), the async shell is what
``scripts/unasync_sdk.py`` makes of the sync one, and ``sdk/`` has no import circle."""

from __future__ import annotations

import ast
import inspect
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from llmos.sdk import AsyncClient, Client, async_resources, sync_resources
from llmos.sdk._core import RESOURCES

ROOT = Path(__file__).resolve().parents[2]
SDK = ROOT / "src" / "llmos" / "sdk"


def _public(cls: type) -> dict[str, Any]:
    return {n: f for n, f in vars(cls).items() if callable(f) and not n.startswith("_")}


def _pairs() -> list[tuple[type, type]]:
    return [
        (cls, getattr(async_resources, f"Async{name}"))
        for name, cls in vars(sync_resources).items()
        if inspect.isclass(cls) and cls.__module__ == sync_resources.__name__
    ]


def test_both_clients_carry_every_resource() -> None:
    sync, aio = Client("http://test"), AsyncClient("http://test")
    for name in RESOURCES:
        assert type(getattr(aio, name)).__name__ == "Async" + type(getattr(sync, name)).__name__
    sync.close()


@pytest.mark.parametrize(("sync_cls", "async_cls"), _pairs(), ids=lambda c: c.__name__)
def test_every_method_has_its_twin(sync_cls: type, async_cls: type) -> None:
    sync_methods, async_methods = _public(sync_cls), _public(async_cls)
    assert sync_methods.keys() == async_methods.keys()
    for name, fn in sync_methods.items():
        twin = async_methods[name]
        assert list(inspect.signature(fn).parameters) == list(inspect.signature(twin).parameters), name
        source = inspect.getsource(fn)
        waits = "self._r.run(" in source or "_core.drain(" in source  # not a stream, not a handle
        assert inspect.iscoroutinefunction(twin) is waits, name


def test_the_async_shell_is_generated_from_the_sync_one() -> None:
    done = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "unasync_sdk.py"), "--check"], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr


def _sdk_imports(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module == "llmos.sdk":
            found |= {f"llmos.sdk.{a.name}" for a in node.names if (SDK / f"{a.name}.py").exists()}
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("llmos.sdk."):
            found.add(str(node.module))
        elif isinstance(node, ast.Name) and node.id == "TYPE_CHECKING":
            raise AssertionError(f"{path.name} imports under TYPE_CHECKING")
    return found


def test_sdk_modules_import_without_circles() -> None:
    graph = {f"llmos.sdk.{p.stem}": _sdk_imports(p) for p in SDK.glob("*.py") if p.stem != "__init__"}

    def reach(start: str, node: str, seen: set[str]) -> bool:
        for nxt in graph.get(node, ()):
            if nxt == start:
                return True
            if nxt not in seen:
                seen.add(nxt)
                if reach(start, nxt, seen):
                    return True
        return False

    circles = [m for m in graph if reach(m, m, set())]
    assert circles == []
