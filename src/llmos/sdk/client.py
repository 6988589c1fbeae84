"""The synchronous client: ``llmos.Client``."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from types import TracebackType
from typing import Any

import httpx

from llmos.sdk import _common as c
from llmos.sdk.conversations import Conversations
from llmos.sdk.data import Data
from llmos.sdk.embeddings import Embeddings
from llmos.sdk.errors import APIConnectionError, NotFoundError
from llmos.sdk.fine_tuning import FineTuning
from llmos.sdk.security import Security
from llmos.sdk.tasks import Tasks
from llmos.sdk.types import ChatMessage, Generation, Model, ModelDetail, Progress, RunningModel

ProgressCallback = Callable[[Progress], None]


class Client:
    """Talks to an llmos server. Without arguments: ``LLMOS_BASE_URL`` (default
    ``http://127.0.0.1:8470``) and ``LLMOS_API_KEY``. Use as a context manager or call close()."""

    def __init__(
        self,
        base_url: str | None = None,
        api_key: str | None = None,
        *,
        timeout: float = c.DEFAULT_TIMEOUT,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.base_url = c.resolve_base_url(base_url)
        self._http = httpx.Client(
            base_url=self.base_url,
            headers=c.headers(c.resolve_api_key(api_key)),
            timeout=c.timeout(timeout),
            transport=transport,
        )
        self.models = Models(self)
        self.security = Security(self)
        self.embeddings = Embeddings(self)
        self.data = Data(self)
        self.tasks = Tasks(self)
        self.conversations = Conversations(self)
        self.fine_tuning = FineTuning(self)

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    # ---- plumbing ------------------------------------------------------------------------

    def _request(self, method: str, path: str, **kwargs: Any) -> Any:
        with c.transport_errors(self.base_url):
            response = self._http.request(method, path, **kwargs)
        return c.check(response)

    def _lines(self, method: str, path: str, **kwargs: Any) -> Iterator[str]:
        with c.transport_errors(self.base_url), self._http.stream(method, path, **kwargs) as response:
            if response.status_code >= 400:
                response.read()
                raise c.error_from(response.status_code, response.content, response.headers)
            yield from response.iter_lines()

    # ---- server --------------------------------------------------------------------------

    def is_reachable(self) -> bool:
        """Whether a server answers ``/health`` at the base URL."""
        try:
            self._request("GET", "/health", timeout=2.0)
        except APIConnectionError:
            return False
        return True

    def ready(self) -> bool:
        try:
            self._request("GET", "/ready", timeout=2.0)
        except Exception:
            return False
        return True

    def ps(self) -> list[RunningModel]:
        return [RunningModel.from_json(m) for m in self._request("GET", "/api/ps")["models"]]

    def load_model(
        self,
        name: str,
        *,
        keep_alive: str | float | None = None,
        pin: bool = False,
        pull: bool = True,
        progress: ProgressCallback | None = None,
    ) -> ModelHandle:
        """Make ``name`` resident on the server (pulling it first if it is missing and ``pull``)."""
        body: dict[str, Any] = {"model": name, "keep_alive": keep_alive, "pin": pin}
        try:
            self._request("POST", "/api/load", json=body)
        except NotFoundError:
            if not pull:
                raise
            self.models.pull(name, progress=progress)
            self._request("POST", "/api/load", json=body)
        return ModelHandle(self, name)

    def model(self, name: str) -> ModelHandle:
        """A handle for ``name`` without loading it first (the first request loads it)."""
        return ModelHandle(self, name)

    def unload(self, name: str) -> bool:
        """Unload now (True) or once the model's running requests end (False)."""
        return bool(self._request("POST", "/api/unload", json={"model": name})["unloaded"])

    def pin(self, name: str) -> RunningModel:
        """Keep a loaded model resident: never evicted, never expired."""
        return RunningModel.from_json(self._request("POST", "/api/pin", json={"model": name}))

    def unpin(self, name: str) -> RunningModel:
        return RunningModel.from_json(self._request("POST", "/api/unpin", json={"model": name}))

    def scheduler(self) -> list[dict[str, Any]]:
        """Each loaded model's scheduler: queues, tenants, requests, the live queueing model."""
        return list((self._request("GET", "/api/scheduler"))["models"])

    def resources(self) -> dict[str, Any]:
        """The server's inventory, memory budget and resident models."""
        return dict(self._request("GET", "/api/resources"))

    # ---- generation ----------------------------------------------------------------------

    def chat(self, model: str, messages: Iterable[ChatMessage], **params: Any) -> Generation:
        return c.parse_chat(
            self._request("POST", "/v1/chat/completions", json=c.chat_body(model, messages, params, False))
        )

    def complete(self, model: str, prompt: str, **params: Any) -> Generation:
        return c.parse_completion(
            self._request("POST", "/v1/completions", json=c.completion_body(model, prompt, params, False))
        )

    def stream_chat(self, model: str, messages: Iterable[ChatMessage], **params: Any) -> Iterator[str]:
        """The first choice's text deltas as they are generated."""
        body = c.chat_body(model, messages, params, True)
        for line in self._lines("POST", "/v1/chat/completions", json=body):
            payload = c.sse_data(line)
            if payload is not None and (text := c.delta_text(payload)):
                yield text

    def stream_completion(self, model: str, prompt: str, **params: Any) -> Iterator[str]:
        body = c.completion_body(model, prompt, params, True)
        for line in self._lines("POST", "/v1/completions", json=body):
            payload = c.sse_data(line)
            if payload is not None and (text := c.delta_text(payload)):
                yield text


class Models:
    """``client.models``: the registry on the server."""

    def __init__(self, client: Client) -> None:
        self._client = client

    def list(self) -> list[Model]:
        return [Model.from_json(m) for m in self._client._request("GET", "/api/models")["models"]]

    def show(self, name: str) -> ModelDetail:
        return ModelDetail.from_json(self._client._request("GET", f"/api/models/{name}"))

    def pull_stream(self, name: str) -> Iterator[Progress]:
        for line in self._client._lines("POST", "/api/pull", json={"model": name, "stream": True}):
            payload = c.ndjson_data(line)
            if payload is not None:
                yield Progress.from_json(payload)

    def pull(self, name: str, *, progress: ProgressCallback | None = None) -> Progress:
        """Pull ``name`` onto the server; ``progress`` sees every event. Returns the last one."""
        last = Progress(status="nothing to do")
        for event in self.pull_stream(name):
            last = event
            if progress is not None:
                progress(event)
        return last

    def import_file(self, path: str, name: str, *, progress: ProgressCallback | None = None) -> Progress:
        """Register a GGUF that is on the *server's* filesystem under ``name``."""
        last = Progress(status="nothing to do")
        for line in self._client._lines("POST", "/api/import", json={"path": path, "model": name}):
            payload = c.ndjson_data(line)
            if payload is not None:
                last = Progress.from_json(payload)
                if progress is not None:
                    progress(last)
        return last

    def delete(self, name: str) -> None:
        self._client._request("DELETE", f"/api/models/{name}")

    def copy(self, source: str, destination: str) -> Model:
        body = {"source": source, "destination": destination}
        return Model.from_json(self._client._request("POST", "/api/models/copy", json=body))


class ModelHandle:
    """A model on the server: generate, chat and stream with it."""

    def __init__(self, client: Client, name: str) -> None:
        self._client = client
        self.name = name

    def __repr__(self) -> str:
        return f"ModelHandle({self.name!r})"

    def generate_text(self, prompt: str, **params: Any) -> str:
        """Complete ``prompt`` (OpenAI's completion parameters: max_tokens, temperature, stop, ...)."""
        return self._client.complete(self.name, prompt, **params).text

    def chat(self, messages: Iterable[ChatMessage] | str, **params: Any) -> Generation:
        """Answer a conversation (a string is one user message); ``.text`` is the reply."""
        return self._client.chat(self.name, _messages(messages), **params)

    def stream(
        self, prompt: str | None = None, *, messages: Iterable[ChatMessage] | None = None, **params: Any
    ) -> Iterator[str]:
        """Text deltas as they are generated: of a chat when ``messages`` are given, else of ``prompt``."""
        if messages is not None:
            return self._client.stream_chat(self.name, list(messages), **params)
        if prompt is None:
            raise ValueError("stream() needs a prompt or messages")
        return self._client.stream_completion(self.name, prompt, **params)

    def unload(self) -> bool:
        return self._client.unload(self.name)


def _messages(messages: Iterable[ChatMessage] | str) -> list[ChatMessage]:
    if isinstance(messages, str):
        return [{"role": "user", "content": messages}]
    return list(messages)
