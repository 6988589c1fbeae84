"""The asynchronous client: ``llmos.AsyncClient`` (the same API as ``Client``, awaited)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterable
from types import TracebackType
from typing import Any

import httpx

from llmos.sdk import _common as c
from llmos.sdk.conversations import AsyncConversations
from llmos.sdk.data import AsyncData
from llmos.sdk.embeddings import AsyncEmbeddings
from llmos.sdk.errors import APIConnectionError, NotFoundError
from llmos.sdk.security import AsyncSecurity
from llmos.sdk.tasks import AsyncTasks
from llmos.sdk.types import ChatMessage, Generation, Model, ModelDetail, Progress, RunningModel

ProgressCallback = Callable[[Progress], None]


class AsyncClient:
    """Talks to an llmos server. Without arguments: ``LLMOS_BASE_URL`` (default
    ``http://127.0.0.1:8470``) and ``LLMOS_API_KEY``. Use ``async with`` or call aclose()."""

    def __init__(
        self,
        base_url: str | None = None,
        api_key: str | None = None,
        *,
        timeout: float = c.DEFAULT_TIMEOUT,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.base_url = c.resolve_base_url(base_url)
        self._http = httpx.AsyncClient(
            base_url=self.base_url,
            headers=c.headers(c.resolve_api_key(api_key)),
            timeout=c.timeout(timeout),
            transport=transport,
        )
        self.models = AsyncModels(self)
        self.security = AsyncSecurity(self)
        self.embeddings = AsyncEmbeddings(self)
        self.data = AsyncData(self)
        self.tasks = AsyncTasks(self)
        self.conversations = AsyncConversations(self)

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    # ---- plumbing ------------------------------------------------------------------------

    async def _request(self, method: str, path: str, **kwargs: Any) -> Any:
        with c.transport_errors(self.base_url):
            response = await self._http.request(method, path, **kwargs)
        return c.check(response)

    async def _lines(self, method: str, path: str, **kwargs: Any) -> AsyncIterator[str]:
        with c.transport_errors(self.base_url):
            async with self._http.stream(method, path, **kwargs) as response:
                if response.status_code >= 400:
                    await response.aread()
                    raise c.error_from(response.status_code, response.content, response.headers)
                async for line in response.aiter_lines():
                    yield line

    # ---- server --------------------------------------------------------------------------

    async def is_reachable(self) -> bool:
        """Whether a server answers ``/health`` at the base URL."""
        try:
            await self._request("GET", "/health", timeout=2.0)
        except APIConnectionError:
            return False
        return True

    async def ready(self) -> bool:
        try:
            await self._request("GET", "/ready", timeout=2.0)
        except Exception:
            return False
        return True

    async def ps(self) -> list[RunningModel]:
        return [RunningModel.from_json(m) for m in (await self._request("GET", "/api/ps"))["models"]]

    async def load_model(
        self,
        name: str,
        *,
        keep_alive: str | float | None = None,
        pin: bool = False,
        pull: bool = True,
        progress: ProgressCallback | None = None,
    ) -> AsyncModelHandle:
        """Make ``name`` resident on the server (pulling it first if it is missing and ``pull``)."""
        body: dict[str, Any] = {"model": name, "keep_alive": keep_alive, "pin": pin}
        try:
            await self._request("POST", "/api/load", json=body)
        except NotFoundError:
            if not pull:
                raise
            await self.models.pull(name, progress=progress)
            await self._request("POST", "/api/load", json=body)
        return AsyncModelHandle(self, name)

    def model(self, name: str) -> AsyncModelHandle:
        """A handle for ``name`` without loading it first (the first request loads it)."""
        return AsyncModelHandle(self, name)

    async def unload(self, name: str) -> bool:
        """Unload now (True) or once the model's running requests end (False)."""
        return bool((await self._request("POST", "/api/unload", json={"model": name}))["unloaded"])

    async def pin(self, name: str) -> RunningModel:
        """Keep a loaded model resident: never evicted, never expired."""
        return RunningModel.from_json(await self._request("POST", "/api/pin", json={"model": name}))

    async def unpin(self, name: str) -> RunningModel:
        return RunningModel.from_json(await self._request("POST", "/api/unpin", json={"model": name}))

    async def scheduler(self) -> list[dict[str, Any]]:
        """Each loaded model's scheduler: queues, tenants, requests, the live queueing model."""
        return list((await self._request("GET", "/api/scheduler"))["models"])

    async def resources(self) -> dict[str, Any]:
        """The server's inventory, memory budget and resident models."""
        return dict(await self._request("GET", "/api/resources"))

    # ---- generation ----------------------------------------------------------------------

    async def chat(self, model: str, messages: Iterable[ChatMessage], **params: Any) -> Generation:
        return c.parse_chat(
            await self._request(
                "POST", "/v1/chat/completions", json=c.chat_body(model, messages, params, False)
            )
        )

    async def complete(self, model: str, prompt: str, **params: Any) -> Generation:
        return c.parse_completion(
            await self._request(
                "POST", "/v1/completions", json=c.completion_body(model, prompt, params, False)
            )
        )

    async def stream_chat(
        self, model: str, messages: Iterable[ChatMessage], **params: Any
    ) -> AsyncIterator[str]:
        """The first choice's text deltas as they are generated."""
        body = c.chat_body(model, messages, params, True)
        async for line in self._lines("POST", "/v1/chat/completions", json=body):
            payload = c.sse_data(line)
            if payload is not None and (text := c.delta_text(payload)):
                yield text

    async def stream_completion(self, model: str, prompt: str, **params: Any) -> AsyncIterator[str]:
        body = c.completion_body(model, prompt, params, True)
        async for line in self._lines("POST", "/v1/completions", json=body):
            payload = c.sse_data(line)
            if payload is not None and (text := c.delta_text(payload)):
                yield text


class AsyncModels:
    """``client.models``: the registry on the server."""

    def __init__(self, client: AsyncClient) -> None:
        self._client = client

    async def list(self) -> list[Model]:
        return [Model.from_json(m) for m in (await self._client._request("GET", "/api/models"))["models"]]

    async def show(self, name: str) -> ModelDetail:
        return ModelDetail.from_json(await self._client._request("GET", f"/api/models/{name}"))

    async def pull_stream(self, name: str) -> AsyncIterator[Progress]:
        async for line in self._client._lines("POST", "/api/pull", json={"model": name, "stream": True}):
            payload = c.ndjson_data(line)
            if payload is not None:
                yield Progress.from_json(payload)

    async def pull(self, name: str, *, progress: ProgressCallback | None = None) -> Progress:
        """Pull ``name`` onto the server; ``progress`` sees every event. Returns the last one."""
        last = Progress(status="nothing to do")
        async for event in self.pull_stream(name):
            last = event
            if progress is not None:
                progress(event)
        return last

    async def import_file(
        self, path: str, name: str, *, progress: ProgressCallback | None = None
    ) -> Progress:
        """Register a GGUF that is on the *server's* filesystem under ``name``."""
        last = Progress(status="nothing to do")
        async for line in self._client._lines("POST", "/api/import", json={"path": path, "model": name}):
            payload = c.ndjson_data(line)
            if payload is not None:
                last = Progress.from_json(payload)
                if progress is not None:
                    progress(last)
        return last

    async def delete(self, name: str) -> None:
        await self._client._request("DELETE", f"/api/models/{name}")

    async def copy(self, source: str, destination: str) -> Model:
        body = {"source": source, "destination": destination}
        return Model.from_json(await self._client._request("POST", "/api/models/copy", json=body))


class AsyncModelHandle:
    """A model on the server: generate, chat and stream with it."""

    def __init__(self, client: AsyncClient, name: str) -> None:
        self._client = client
        self.name = name

    def __repr__(self) -> str:
        return f"AsyncModelHandle({self.name!r})"

    async def generate_text(self, prompt: str, **params: Any) -> str:
        """Complete ``prompt`` (OpenAI's completion parameters: max_tokens, temperature, stop, ...)."""
        return (await self._client.complete(self.name, prompt, **params)).text

    async def chat(self, messages: Iterable[ChatMessage] | str, **params: Any) -> Generation:
        """Answer a conversation (a string is one user message); ``.text`` is the reply."""
        return await self._client.chat(self.name, _messages(messages), **params)

    def stream(
        self, prompt: str | None = None, *, messages: Iterable[ChatMessage] | None = None, **params: Any
    ) -> AsyncIterator[str]:
        """Text deltas as they are generated: of a chat when ``messages`` are given, else of ``prompt``."""
        if messages is not None:
            return self._client.stream_chat(self.name, list(messages), **params)
        if prompt is None:
            raise ValueError("stream() needs a prompt or messages")
        return self._client.stream_completion(self.name, prompt, **params)

    async def unload(self) -> bool:
        return await self._client.unload(self.name)


def _messages(messages: Iterable[ChatMessage] | str) -> list[ChatMessage]:
    if isinstance(messages, str):
        return [{"role": "user", "content": messages}]
    return list(messages)
