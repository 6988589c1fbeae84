"""``/api/tasks`` and ``/api/conversations`` over a fake engine (which ignores grammars: its
lorem output shows how a non-JSON answer is reported)."""

from __future__ import annotations

import httpx
import pytest
from fastapi import FastAPI

from llmos.security.principal import Principal
from llmos.server.auth import principal

pytestmark = pytest.mark.anyio


async def test_list_tasks(http: httpx.AsyncClient) -> None:
    r = await http.get("/api/tasks")
    assert r.status_code == 200
    names = {t["name"] for t in r.json()["data"]}
    assert names == {"summarize", "translate", "classify", "sentiment", "extract_entities"}


async def test_unknown_task_is_404(http: httpx.AsyncClient) -> None:
    r = await http.post("/api/tasks/poetry", json={"text": "hi", "model": "fake:1"})
    assert r.status_code == 404 and "summarize" in r.json()["error"]["message"]


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"text": "hi", "model": "fake:1", "params": {}}, "params.labels"),
        ({"text": "hi", "model": "fake:1", "params": {"labels": ["a"]}}, "params.labels"),
        ({"text": "hi", "model": "fake:1", "params": {"labels": ["a", "b"], "colour": 1}}, "params.colour"),
    ],
)
async def test_bad_params_are_400(http: httpx.AsyncClient, body: dict[str, object], param: str) -> None:
    r = await http.post("/api/tasks/classify", json=body)
    assert r.status_code == 400 and r.json()["error"]["param"] == param


async def test_bad_body_is_400(http: httpx.AsyncClient) -> None:
    assert (await http.post("/api/tasks/sentiment", json={"model": "fake:1"})).status_code == 400
    assert (await http.post("/api/tasks/sentiment", json={"text": "x", "modle": "fake:1"})).status_code == 400
    r = await http.post("/api/tasks/sentiment", json={"text": "x", "model": "fake:1", "max_input_chars": 0})
    assert r.status_code == 400


async def test_unknown_model_is_404(http: httpx.AsyncClient) -> None:
    r = await http.post("/api/tasks/sentiment", json={"text": "fine", "model": "nope:1"})
    assert r.status_code == 404


async def test_an_answer_that_is_not_json_is_a_server_error(http: httpx.AsyncClient) -> None:
    """The fake engine ignores the grammar; a real one cannot produce this."""
    r = await http.post("/api/tasks/sentiment", json={"text": "I love it", "model": "fake:1"})
    assert r.status_code == 500 and r.json()["error"]["code"] == "generation_failed"


async def test_a_key_without_the_inference_scope_is_403(app: FastAPI, http: httpx.AsyncClient) -> None:
    app.dependency_overrides[principal] = lambda: Principal("acme", scopes=frozenset({"models:read"}))
    r = await http.post("/api/tasks/sentiment", json={"text": "x", "model": "fake:1"})
    assert r.status_code == 403
    assert (await http.get("/api/conversations")).status_code == 403


async def test_a_key_limited_to_other_models_is_403(app: FastAPI, http: httpx.AsyncClient) -> None:
    app.dependency_overrides[principal] = lambda: Principal(
        "acme", scopes=frozenset({"inference"}), model_patterns=("other:*",)
    )
    r = await http.post("/api/tasks/sentiment", json={"text": "x", "model": "fake:1"})
    assert r.status_code == 403


async def test_conversation_lifecycle(http: httpx.AsyncClient) -> None:
    r = await http.post(
        "/api/conversations",
        json={"title": "t", "metadata": {"app": "test"}, "messages": [{"role": "system", "content": "hi"}]},
    )
    assert r.status_code == 201
    conv = r.json()
    assert conv["message_count"] == 1 and conv["messages"][0]["role"] == "system"
    call = {"id": "c1", "type": "function", "function": {"name": "calculator", "arguments": "{}"}}
    r = await http.post(
        f"/api/conversations/{conv['id']}/messages",
        json={
            "messages": [
                {"role": "user", "content": "1+1?"},
                {"role": "assistant", "content": None, "tool_calls": [call]},
                {"role": "tool", "tool_call_id": "c1", "content": "2"},
            ]
        },
    )
    assert r.status_code == 200 and [m["position"] for m in r.json()["data"]] == [1, 2, 3]
    got = (await http.get(f"/api/conversations/{conv['id']}")).json()
    assert [m["role"] for m in got["messages"]] == ["system", "user", "assistant", "tool"]
    assert got["messages"][2]["tool_calls"] == [call]
    r = await http.patch(f"/api/conversations/{conv['id']}", json={"metadata": {"stage": "x"}})
    assert r.status_code == 200 and r.json()["metadata"] == {"stage": "x"}
    listed = (await http.get("/api/conversations")).json()["data"]
    assert [c["id"] for c in listed] == [conv["id"]] and listed[0]["messages"] is None
    assert (await http.delete(f"/api/conversations/{conv['id']}")).status_code == 200
    assert (await http.get(f"/api/conversations/{conv['id']}")).status_code == 404


async def test_bad_messages_are_400(http: httpx.AsyncClient) -> None:
    conv = (await http.post("/api/conversations", json={})).json()
    for message in ({"role": "robot", "content": "x"}, {"role": "tool", "content": "x"}, {"role": "user"}):
        r = await http.post(f"/api/conversations/{conv['id']}/messages", json={"messages": [message]})
        assert r.status_code == 400, message


async def test_another_tenants_conversation_is_404(app: FastAPI, http: httpx.AsyncClient) -> None:
    app.dependency_overrides[principal] = lambda: Principal("acme")
    conv = (await http.post("/api/conversations", json={"title": "secret"})).json()
    app.dependency_overrides[principal] = lambda: Principal("globex")
    assert (await http.get(f"/api/conversations/{conv['id']}")).status_code == 404
    r = await http.post(
        f"/api/conversations/{conv['id']}/messages", json={"messages": [{"role": "user", "content": "x"}]}
    )
    assert r.status_code == 404
    assert (await http.patch(f"/api/conversations/{conv['id']}", json={"title": "mine"})).status_code == 404
    assert (await http.delete(f"/api/conversations/{conv['id']}")).status_code == 404
    assert (await http.get("/api/conversations")).json()["data"] == []
    app.dependency_overrides[principal] = lambda: Principal("acme")
    assert (await http.get(f"/api/conversations/{conv['id']}")).json()["title"] == "secret"


async def test_an_input_longer_than_the_context_is_cut_to_fit(http: httpx.AsyncClient) -> None:
    """The fake model's context is 512 tokens a sequence (a token per byte): without fitting,
    this prompt would be refused with a 400; cut to fit, it reaches generation (whose lorem
    answer is then refused as not JSON)."""
    text = "The delivery was late again. " * 200
    r = await http.post("/api/tasks/sentiment", json={"text": text, "model": "fake:1"})
    assert r.status_code == 500 and r.json()["error"]["code"] == "generation_failed"
    r = await http.post("/api/tasks/sentiment", json={"text": text, "model": "fake:1", "max_tokens": 600})
    assert r.status_code == 400 and r.json()["error"]["param"] == "max_tokens"
