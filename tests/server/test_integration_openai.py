"""The real server (uvicorn in a subprocess, fresh LLMOS_HOME, real SQLite, real llama.cpp
worker) with smollm2:135m imported through the admin API, driven by the official ``openai``
package and the llmos SDK."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

import llmos

pytestmark = pytest.mark.integration

MODEL = "smollm2:135m"


@dataclass
class RealServer:
    url: str
    proc: subprocess.Popen[bytes]
    log: Path
    home: Path

    def logs(self) -> str:
        return self.log.read_text(errors="replace")[-4000:]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_ready(url: str, proc: subprocess.Popen[bytes], path: str, limit_s: float = 120) -> None:
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            if httpx.get(url + path, timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise TimeoutError(f"{url}{path} not ready in {limit_s}s")


def start_server(home: Path, *, drain_s: float = 10, default_model: bool = False) -> RealServer:
    return start_server_with(
        home, {"LLMOS_N_SLOTS": "16", "LLMOS_N_CTX": "4096"}, drain_s=drain_s, default_model=default_model
    )


def start_server_with(
    home: Path,
    settings: dict[str, str],
    *,
    drain_s: float = 10,
    default_model: bool = False,
    limit_s: float = 120,
) -> RealServer:
    """A real ``llmos serve`` in a subprocess with these ``LLMOS_*`` settings, once it answers /health."""
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if k != "LLMOS_DATABASE_URL"}  # SQLite unless settings say
    env.update({"LLMOS_HOME": str(home), **settings})
    log = home.parent / f"server-{port}.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "llmos", "serve", "--port", str(port), "--drain-timeout", str(drain_s)]
            + ([] if default_model else ["--no-default-model"]),
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    server = RealServer(f"http://127.0.0.1:{port}", proc, log, home)
    try:
        _wait_ready(server.url, proc, "/health", limit_s)
    except Exception:
        proc.kill()
        raise RuntimeError(server.logs()) from None
    return server


def stop_server(server: RealServer) -> int:
    if server.proc.poll() is None:
        server.proc.send_signal(signal.SIGTERM)
        try:
            return server.proc.wait(60)
        except subprocess.TimeoutExpired:
            server.proc.kill()
            return server.proc.wait(10)
    return server.proc.returncode


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, smollm2_gguf: Path) -> Iterator[RealServer]:
    home = tmp_path_factory.mktemp("srv") / "home"
    s = start_server(home)
    try:
        r = httpx.post(
            s.url + "/api/import",
            json={"path": str(smollm2_gguf), "model": MODEL, "stream": False},
            timeout=300,
        )
        assert r.status_code == 200, r.text
        yield s
    finally:
        stop_server(s)


@pytest.fixture
def oai(server: RealServer) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.url + "/v1", api_key="unused", max_retries=0, timeout=300)


def test_openai_chat_non_streaming(oai: openai.OpenAI) -> None:
    r = oai.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": "Name a color."}],
        max_tokens=8,
        temperature=0,
        logprobs=True,
        top_logprobs=2,
    )
    choice = r.choices[0]
    assert choice.message.role == "assistant" and choice.message.content
    assert choice.finish_reason in ("stop", "length")
    assert r.usage is not None and 0 < r.usage.completion_tokens <= 8 and r.usage.prompt_tokens > 5
    assert choice.logprobs is not None and choice.logprobs.content
    assert all(len(t.top_logprobs) == 2 for t in choice.logprobs.content)


def test_openai_chat_streaming_matches_non_streaming(oai: openai.OpenAI) -> None:
    kwargs = {
        "model": MODEL,
        "messages": [{"role": "user", "content": "Count to five."}],
        "max_tokens": 12,
        "temperature": 0,
    }
    whole = oai.chat.completions.create(**kwargs).choices[0].message.content  # type: ignore[call-overload]
    stream = oai.chat.completions.create(**kwargs, stream=True, stream_options={"include_usage": True})  # type: ignore[call-overload]
    parts, usage = [], None
    for chunk in stream:
        if chunk.choices:
            parts.append(chunk.choices[0].delta.content or "")
        if chunk.usage is not None:
            usage = chunk.usage
    assert "".join(parts) == whole
    assert len([p for p in parts if p]) > 1, "streamed token by token"
    assert usage is not None and usage.completion_tokens > 0


def test_openai_completions_and_models(oai: openai.OpenAI) -> None:
    r = oai.completions.create(model=MODEL, prompt="The sky is", max_tokens=5, temperature=0, n=2, seed=1)
    assert len(r.choices) == 2 and r.usage is not None and r.usage.completion_tokens > 0
    assert MODEL in [m.id for m in oai.models.list()]
    assert oai.models.retrieve(MODEL).id == MODEL


def test_openai_errors(oai: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as nf:
        oai.chat.completions.create(model="ghost:1", messages=[{"role": "user", "content": "x"}])
    assert nf.value.code == "model_not_found"
    with pytest.raises(openai.BadRequestError) as bad:
        oai.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "x"}], temperature=9)
    assert bad.value.status_code == 400 and "temperature" in str(bad.value.message)


WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The current weather in a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}


def test_required_tool_calls_on_smollm2_end_after_their_calls(oai: openai.OpenAI) -> None:
    """The probe: with ``tool_choice: "required"`` and ``max_tokens: 100`` smollm2 repeats the same
    call until the limit, and the answer carried no ``tool_calls`` but the raw markup."""
    ask: dict[str, Any] = {
        "model": MODEL,
        "messages": [{"role": "user", "content": "What is the weather in Paris?"}],
        "tools": [WEATHER_TOOL],
        "tool_choice": "required",
        "max_tokens": 100,
    }
    for seed in range(3):
        r = oai.chat.completions.create(**ask, seed=seed, temperature=0.7)
        message = r.choices[0].message
        assert message.tool_calls and not message.content, message
        keys = [(c.function.name, c.function.arguments) for c in message.tool_calls]
        assert len(keys) == len(set(keys)), "a repeated call is dropped"
        assert all(json.loads(arguments) for _, arguments in keys)
        assert r.choices[0].finish_reason in ("tool_calls", "length")
    one = oai.chat.completions.create(**ask, parallel_tool_calls=False, temperature=0)
    assert one.choices[0].finish_reason == "tool_calls" and len(one.choices[0].message.tool_calls or []) == 1
    assert one.usage is not None and one.usage.completion_tokens < 100  # it ended after its call
    streamed = oai.chat.completions.create(**ask, temperature=0, stream=True)
    content, arguments, finish = "", "", None
    for chunk in streamed:
        delta = chunk.choices[0].delta if chunk.choices else None
        if delta is not None:
            content += delta.content or ""
            for call in delta.tool_calls or []:
                arguments += call.function.arguments or "" if call.function else ""
        if chunk.choices and chunk.choices[0].finish_reason:
            finish = chunk.choices[0].finish_reason
    assert "<tool_call>" not in content and finish in ("tool_calls", "length") and arguments


def test_sdk_against_the_real_server(server: RealServer) -> None:
    with llmos.Client(base_url=server.url) as client:
        model = client.load_model(MODEL)
        [resident] = [m for m in client.ps() if m.name == MODEL]
        # The Q4_1 file runs from its Q8_0 re-encoding, kept beside the blob it came from, and a
        # sequence decoding alone from the file itself (the solo lane).
        assert resident.weights == "q8_0 (converted from q4_1); one sequence alone: q4_1 (as stored)"
        assert len(list((server.home / "derived").glob("sha256-*.q8_0.gguf"))) == 1
        text = model.generate_text("Hello", max_tokens=6, temperature=0)
        assert text
        deltas = list(
            model.stream(messages=[{"role": "user", "content": "Hi!"}], max_tokens=6, temperature=0)
        )
        assert "".join(deltas) == model.chat("Hi!", max_tokens=6, temperature=0).text
        assert [m.name for m in client.models.list()] == [MODEL]


def test_sixteen_concurrent_streams_on_the_real_engine(server: RealServer) -> None:
    results: list[str] = []
    errors: list[BaseException] = []

    def one(i: int) -> None:
        try:
            client = openai.OpenAI(base_url=server.url + "/v1", api_key="x", max_retries=0, timeout=300)
            text = ""
            for chunk in client.chat.completions.create(
                model=MODEL, messages=[{"role": "user", "content": f"Say {i}"}], max_tokens=10, stream=True
            ):
                if chunk.choices:
                    text += chunk.choices[0].delta.content or ""
            results.append(text)
        except BaseException as exc:  # collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(300)
    assert not errors and len(results) == 16 and all(results)


def test_sigterm_drains_in_flight_then_exits(tmp_path: Path, smollm2_gguf: Path) -> None:
    s = start_server(tmp_path / "home", drain_s=60)
    try:
        httpx.post(
            s.url + "/api/import",
            json={"path": str(smollm2_gguf), "model": MODEL, "stream": False},
            timeout=300,
        )
        httpx.post(s.url + "/api/load", json={"model": MODEL}, timeout=300).raise_for_status()
        body = {
            "model": MODEL,
            "messages": [{"role": "user", "content": "Tell a story."}],
            "max_tokens": 24,
            "stream": True,
            "temperature": 0,
        }
        finish: list[str] = []
        with httpx.stream("POST", s.url + "/v1/chat/completions", json=body, timeout=300) as r:
            lines = r.iter_lines()
            for line in lines:
                if line.startswith("data: {"):
                    break  # the first token arrived: the request is in flight
            s.proc.send_signal(signal.SIGTERM)
            for line in lines:
                if line.startswith("data: {"):
                    chunk = json.loads(line[6:])
                    if chunk["choices"] and chunk["choices"][0]["finish_reason"]:
                        finish.append(chunk["choices"][0]["finish_reason"])
        assert finish == ["length"], "the in-flight request finished during the drain"
        assert s.proc.wait(60) == 0
        with pytest.raises(httpx.TransportError):
            httpx.get(s.url + "/health", timeout=2)
    finally:
        stop_server(s)


def test_serve_reports_ready_only_after_the_default_model_is_loaded(
    tmp_path: Path, smollm2_gguf: Path
) -> None:
    home = tmp_path / "home"
    first = start_server(home)
    httpx.post(
        first.url + "/api/import",
        json={"path": str(smollm2_gguf), "model": MODEL, "stream": False},
        timeout=300,
    )
    assert stop_server(first) == 0
    s = start_server(home, default_model=True)
    try:
        _wait_ready(s.url, s.proc, "/ready", limit_s=300)
        ps = httpx.get(s.url + "/api/ps").json()["models"]
        assert [m["name"] for m in ps] == [MODEL] and ps[0]["state"] == "ready"
    finally:
        stop_server(s)
