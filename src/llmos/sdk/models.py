"""The server, its registry and generation: the calls behind ``client.models``, ``client.chat``,
``client.load_model`` and a model handle's methods (see ``_core`` for how they are run)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from llmos.sdk._core import Call, Stream, nothing, rows, segment
from llmos.sdk.types import ChatMessage, Generation, Model, ModelDetail, Progress, RunningModel, Usage


def messages(value: Iterable[ChatMessage] | str) -> list[ChatMessage]:
    """A conversation as a list (a string is one user message)."""
    if isinstance(value, str):
        return [{"role": "user", "content": value}]
    return list(value)


# ---- the server ------------------------------------------------------------------------------


def health() -> Call[None]:
    return Call("GET", "/health", nothing, timeout=2.0, retry=False)


def ready() -> Call[None]:
    return Call("GET", "/ready", nothing, timeout=2.0, retry=False)


def ps() -> Call[list[RunningModel]]:
    return Call("GET", "/api/ps", rows(RunningModel.from_json, "models"))


def load(name: str, keep_alive: str | float | None, pin: bool) -> Call[None]:
    return Call("POST", "/api/load", nothing, json={"model": name, "keep_alive": keep_alive, "pin": pin})


def unload(name: str) -> Call[bool]:
    return Call("POST", "/api/unload", lambda d: bool(d["unloaded"]), json={"model": name})


def pin(name: str) -> Call[RunningModel]:
    return Call("POST", "/api/pin", RunningModel.from_json, json={"model": name})


def unpin(name: str) -> Call[RunningModel]:
    return Call("POST", "/api/unpin", RunningModel.from_json, json={"model": name})


def scheduler() -> Call[list[dict[str, Any]]]:
    return Call("GET", "/api/scheduler", lambda d: list(d["models"]))


def resources() -> Call[dict[str, Any]]:
    return Call("GET", "/api/resources", dict)


def cluster() -> Call[dict[str, Any]]:
    return Call("GET", "/api/cluster", dict)


def scale(name: str, replicas: int) -> Call[int]:
    return Call(
        "POST", "/api/scale", lambda d: int(d["replicas"]), json={"model": name, "replicas": replicas}
    )


# ---- the registry ----------------------------------------------------------------------------


def list_models() -> Call[list[Model]]:
    return Call("GET", "/api/models", rows(Model.from_json, "models"))


def show(name: str) -> Call[ModelDetail]:
    return Call("GET", f"/api/models/{segment(name)}", ModelDetail.from_json)


def pull(name: str) -> Stream[Progress]:
    return Stream("POST", "/api/pull", Progress.from_json, json={"model": name, "stream": True}, ndjson=True)


def import_file(path: str, name: str) -> Stream[Progress]:
    return Stream("POST", "/api/import", Progress.from_json, json={"path": path, "model": name}, ndjson=True)


def delete(name: str) -> Call[None]:
    return Call("DELETE", f"/api/models/{segment(name)}", nothing)


def copy(source: str, destination: str) -> Call[Model]:
    body = {"source": source, "destination": destination}
    return Call("POST", "/api/models/copy", Model.from_json, json=body)


NO_PROGRESS = Progress(status="nothing to do")
"""What a pull or an import returns when the server sent no event."""


# ---- generation ------------------------------------------------------------------------------


def chat(model: str, history: Iterable[ChatMessage], params: Mapping[str, Any]) -> Call[Generation]:
    body = {"model": model, "messages": list(history), **params, "stream": False}
    return Call("POST", "/v1/chat/completions", parse_chat, json=body)


def complete(model: str, prompt: str, params: Mapping[str, Any]) -> Call[Generation]:
    body = {"model": model, "prompt": prompt, **params, "stream": False}
    return Call("POST", "/v1/completions", parse_completion, json=body)


def stream_chat(model: str, history: Iterable[ChatMessage], params: Mapping[str, Any]) -> Stream[str]:
    body = {"model": model, "messages": list(history), **params, "stream": True}
    return Stream("POST", "/v1/chat/completions", delta_text, json=body)


def stream_completion(model: str, prompt: str, params: Mapping[str, Any]) -> Stream[str]:
    body = {"model": model, "prompt": prompt, **params, "stream": True}
    return Stream("POST", "/v1/completions", delta_text, json=body)


def stream(
    model: str, prompt: str | None, history: Iterable[ChatMessage] | None, params: Mapping[str, Any]
) -> Stream[str]:
    """A handle's ``stream()``: of a chat when ``history`` is given, else of ``prompt``."""
    if history is not None:
        return stream_chat(model, history, params)
    if prompt is None:
        raise ValueError("stream() needs a prompt or messages")
    return stream_completion(model, prompt, params)


def parse_chat(d: dict[str, Any]) -> Generation:
    choices = d.get("choices") or []
    texts = tuple((c.get("message") or {}).get("content") or "" for c in choices)
    first = choices[0] if choices else {}
    return _generation(d, texts, tuple((first.get("message") or {}).get("tool_calls") or ()))


def parse_completion(d: dict[str, Any]) -> Generation:
    return _generation(d, tuple(c.get("text") or "" for c in d.get("choices") or []), ())


def _generation(d: dict[str, Any], texts: tuple[str, ...], tool_calls: tuple[Any, ...]) -> Generation:
    first = (d.get("choices") or [{}])[0]
    return Generation(
        text=texts[0] if texts else "",
        finish_reason=first.get("finish_reason"),
        usage=Usage.from_json(d.get("usage")),
        model=str(d.get("model", "")),
        id=str(d.get("id", "")),
        choices=texts,
        tool_calls=tool_calls,
    )


def delta_text(payload: dict[str, Any]) -> str | None:
    """The first choice's new text in a chat or completion chunk (None: nothing new)."""
    for choice in payload.get("choices") or []:
        if choice.get("index", 0) != 0:
            continue
        if "delta" in choice:
            return str((choice.get("delta") or {}).get("content") or "") or None
        return str(choice.get("text") or "") or None
    return None
