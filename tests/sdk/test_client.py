"""Both clients against a real server (uvicorn over a fake-engine kernel): every test runs once
with ``Client`` and once with ``AsyncClient`` (``make_client``, see conftest)."""

from __future__ import annotations

import socket

import pytest

import llmos
from llmos.sdk import APIConnectionError, BadRequestError, ConflictError, NotFoundError, Progress, RetryPolicy

from .conftest import MakeClient


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_models_registry_operations(live_url: str, make_client: MakeClient) -> None:
    client = make_client(live_url)
    assert [m.name for m in client.models.list()] == ["fake:1"]
    events: list[Progress] = []
    last = client.models.pull("cat:1", progress=events.append)
    assert last.done and last.status == "success"
    assert [e.completed for e in events[:-1]] == [0, 500, 1000]
    assert [e.completed for e in client.models.pull_stream("cat:1")][-1] is not None
    shown = client.models.show("cat:1")
    assert shown.name == "cat:1" and shown.size == 1000 and shown.versions
    assert client.models.copy("cat:1", "dog:1").name == "dog:1"
    with pytest.raises(ConflictError):
        client.models.copy("cat:1", "dog:1")
    client.models.delete("dog:1")
    with pytest.raises(NotFoundError) as err:
        client.models.show("dog:1")
    assert (
        err.value.status_code == 404 and err.value.code == "model_not_found" and "dog:1" in err.value.message
    )


def test_load_model_generate_chat_stream_ps_unload(live_url: str, make_client: MakeClient) -> None:
    client = make_client(live_url)
    model = client.load_model("fake:1")
    assert [m.name for m in client.ps()] == ["fake:1"]
    text = model.generate_text("Once upon", max_tokens=7, temperature=0)
    assert len(text) == 7
    reply = model.chat([{"role": "user", "content": "hi"}], max_tokens=5)
    assert len(reply.text) == 5 and reply.usage.completion_tokens == 5 and reply.finish_reason == "length"
    assert len(model.chat("hello", max_tokens=3).text) == 3
    deltas = list(model.stream(messages=[{"role": "user", "content": "hi"}], max_tokens=6, temperature=0))
    assert len(deltas) == 6 and "".join(deltas) == model.chat("hi", max_tokens=6, temperature=0).text
    assert "".join(model.stream("Once upon", max_tokens=7, temperature=0)) == text
    assert client.complete("fake:1", "Once upon", max_tokens=7, temperature=0).text == text
    assert "".join(client.stream_completion("fake:1", "Once upon", max_tokens=7, temperature=0)) == text
    assert client.pin("fake:1").pinned is True and client.unpin("fake:1").pinned is False
    assert [q["model"] for q in client.scheduler()] == ["fake:1"]
    assert client.resources()["residents"][0]["model"] == "fake:1"
    assert client.ready() is True
    assert client.unload("fake:1") is True
    assert client.ps() == []


def test_load_model_pulls_a_missing_catalog_model(live_url: str, make_client: MakeClient) -> None:
    client = make_client(live_url)
    seen: list[Progress] = []
    handle = client.load_model("cat:1", progress=seen.append)
    assert seen and seen[-1].done
    assert handle.generate_text("x", max_tokens=2)
    with pytest.raises(NotFoundError):
        client.load_model("ghost:1", pull=False)


def test_server_errors_become_typed_exceptions(live_url: str, make_client: MakeClient) -> None:
    client = make_client(live_url)
    with pytest.raises(BadRequestError) as err:
        client.chat("fake:1", [{"role": "user", "content": "x"}], temperature=5)
    assert err.value.param == "temperature" and err.value.status_code == 400
    with pytest.raises(NotFoundError):
        list(client.stream_chat("ghost:1", [{"role": "user", "content": "x"}]))


def test_unreachable_server_is_a_connection_error(make_client: MakeClient) -> None:
    client = make_client(f"http://127.0.0.1:{_closed_port()}", timeout=2, retry=RetryPolicy(backoff=0))
    assert client.is_reachable() is False and client.ready() is False
    with pytest.raises(APIConnectionError, match="cannot reach"):
        client.ps()
    with pytest.raises(APIConnectionError, match="cannot reach"):
        client.models.pull("smollm2:135m")


def test_defaults_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LLMOS_BASE_URL", "http://10.0.0.9:1234/v1/")
    monkeypatch.setenv("LLMOS_API_KEY", "sk-test")
    client = llmos.Client()
    assert client.base_url == "http://10.0.0.9:1234"
    assert client._http.headers["authorization"] == "Bearer sk-test"
    client.close()
    monkeypatch.delenv("LLMOS_BASE_URL")
    assert llmos.Client().base_url == "http://127.0.0.1:8470"


@pytest.mark.anyio
async def test_async_client_is_awaited_and_iterated_natively(live_url: str) -> None:
    async with llmos.AsyncClient(base_url=live_url) as client:
        model = await client.load_model("fake:1")
        assert len(await model.generate_text("abc", max_tokens=4)) == 4
        parts = [t async for t in model.stream(messages=[{"role": "user", "content": "hi"}], max_tokens=5)]
        assert len(parts) == 5
        assert repr(model) == "AsyncModelHandle('fake:1')"
        assert await model.unload() is True


def test_sdk_imports_nothing_from_server_engine_or_storage() -> None:
    import subprocess
    import sys

    code = (
        "import sys, llmos.sdk; "
        "bad = [m for m in sys.modules if m.startswith(('llmos.server', 'llmos.engine', 'llmos.storage', "
        "'llmos.kernel', 'llmos.scheduler'))]; print(bad); sys.exit(1 if bad else 0)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
