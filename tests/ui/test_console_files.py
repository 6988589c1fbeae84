"""The console's files: served from the package at /ui/, safely, with every module they import."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from kernel.fakes import fake_kernel
from llmos.server import create_app
from llmos.server.routes.ui import UI_DIR

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
async def client(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(fake_kernel(tmp_path))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as c:
        yield c


async def test_the_console_page_and_its_assets(client: httpx.AsyncClient) -> None:
    root = await client.get("/")
    assert root.status_code == 307 and root.headers["location"] == "/ui/"
    assert (await client.get("/ui")).headers["location"] == "/ui/"
    page = await client.get("/ui/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert page.headers["x-content-type-options"] == "nosniff"
    assert '<script type="module" src="js/main.js">' in page.text
    js = await client.get("/ui/js/main.js")
    assert js.status_code == 200 and js.headers["content-type"].startswith("text/javascript")
    css = await client.get("/ui/css/console.css")
    assert css.headers["content-type"].startswith("text/css")


@pytest.mark.parametrize("path", ["/ui/../config.py", "/ui/%2e%2e/config.py", "/ui/js/nope.js", "/ui/js"])
async def test_nothing_outside_the_console_folder(client: httpx.AsyncClient, path: str) -> None:
    r = await client.get(path)
    assert r.status_code == 404 and "import" not in r.text


def test_every_module_import_resolves_to_a_shipped_file() -> None:
    scripts = sorted(UI_DIR.rglob("*.js"))
    assert scripts, UI_DIR
    for script in scripts:
        text = script.read_text()
        assert "http://" not in text and "https://" not in text, f"{script}: the console must work offline"
        for target in re.findall(r'^\s*(?:import|export)[^;]*?from\s+"(\.[^"]+)"', text, flags=re.M):
            assert (script.parent / target).resolve().is_file(), f"{script.name} imports missing {target}"
    index = (UI_DIR / "index.html").read_text()
    for ref in re.findall(r'(?:src|href)="([^"#:]+)"', index):
        assert (UI_DIR / ref).is_file(), ref


def test_every_tab_has_a_view_and_every_view_a_tab() -> None:
    index = (UI_DIR / "index.html").read_text()
    tabs = re.findall(r'<a href="#/([\w-]+)" data-view="([\w-]+)">', index)
    assert tabs and all(href == view for href, view in tabs), tabs
    main = (UI_DIR / "js" / "main.js").read_text()
    [registry] = re.findall(r"^const VIEWS = \{(.*)\};$", main, flags=re.M)
    names = {(entry.split(":")[0].strip().strip('"')) for entry in registry.split(",")}
    assert names == {view for _, view in tabs}, (names, tabs)
    for entry in registry.split(","):
        module = entry.split(":")[-1].strip()
        assert re.search(rf'^import \* as {module} from "\./views/\w+\.js";$', main, flags=re.M), module
