"""``client.conversations``: conversation memory kept by the server, per tenant.

Messages are chat-completions messages (``{"role": ..., "content": ...}``, with ``tool_calls`` or
``tool_call_id`` where they apply), so ``conversation.chat_messages()`` can be sent as-is.
"""

from __future__ import annotations

import builtins
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from llmos.sdk.async_client import AsyncClient
    from llmos.sdk.client import Client

_MESSAGE_KEYS = ("role", "content", "name", "tool_call_id", "tool_calls")


@dataclass(frozen=True)
class StoredMessage:
    position: int
    role: str
    content: str | None
    name: str | None = None
    tool_call_id: str | None = None
    tool_calls: tuple[dict[str, Any], ...] | None = None
    created_at: str | None = None

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> StoredMessage:
        calls = d.get("tool_calls")
        return cls(
            position=int(d.get("position", 0)),
            role=str(d["role"]),
            content=d.get("content"),
            name=d.get("name"),
            tool_call_id=d.get("tool_call_id"),
            tool_calls=tuple(calls) if calls else None,
            created_at=d.get("created_at"),
        )

    def to_chat(self) -> dict[str, Any]:
        """The message as a chat-completions ``messages`` entry."""
        out: dict[str, Any] = {"role": self.role, "content": self.content}
        if self.name is not None:
            out["name"] = self.name
        if self.tool_call_id is not None:
            out["tool_call_id"] = self.tool_call_id
        if self.tool_calls:
            out["tool_calls"] = [dict(c) for c in self.tool_calls]
        return out


@dataclass(frozen=True)
class Conversation:
    id: str
    title: str
    metadata: dict[str, Any]
    message_count: int
    created_at: str
    updated_at: str
    messages: tuple[StoredMessage, ...] = ()
    """Every message, in order (empty in listings)."""

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Conversation:
        return cls(
            id=str(d["id"]),
            title=str(d.get("title", "")),
            metadata=dict(d.get("metadata") or {}),
            message_count=int(d.get("message_count", 0)),
            created_at=str(d.get("created_at", "")),
            updated_at=str(d.get("updated_at", "")),
            messages=tuple(StoredMessage.from_json(m) for m in d.get("messages") or []),
        )

    def chat_messages(self) -> list[dict[str, Any]]:
        return [m.to_chat() for m in self.messages]


def _clean(messages: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Only the fields the server stores (a chat response's message may carry more)."""
    return [{k: m[k] for k in _MESSAGE_KEYS if m.get(k) is not None or k == "content"} for m in messages]


class Conversations:
    """``client.conversations``: create, get, list, append, update, delete."""

    def __init__(self, client: Client) -> None:
        self._client = client

    def create(
        self,
        *,
        title: str = "",
        metadata: dict[str, Any] | None = None,
        messages: Iterable[dict[str, Any]] = (),
    ) -> Conversation:
        body = {"title": title, "metadata": metadata or {}, "messages": _clean(messages)}
        return Conversation.from_json(self._client._request("POST", "/api/conversations", json=body))

    def get(self, conversation_id: str) -> Conversation:
        """The conversation with every message. Raises NotFoundError (also for another tenant's)."""
        return Conversation.from_json(self._client._request("GET", f"/api/conversations/{conversation_id}"))

    def list(self, *, limit: int = 50, offset: int = 0) -> list[Conversation]:
        """This tenant's conversations, most recently updated first."""
        d = self._client._request("GET", "/api/conversations", params={"limit": limit, "offset": offset})
        return [Conversation.from_json(c) for c in d["data"]]

    def append(
        self, conversation_id: str, messages: Iterable[dict[str, Any]]
    ) -> builtins.list[StoredMessage]:
        """Append messages at the end; returns them with their positions."""
        body = {"messages": _clean(messages)}
        d = self._client._request("POST", f"/api/conversations/{conversation_id}/messages", json=body)
        return [StoredMessage.from_json(m) for m in d["data"]]

    def update(
        self, conversation_id: str, *, title: str | None = None, metadata: dict[str, Any] | None = None
    ) -> Conversation:
        body: dict[str, Any] = {}
        if title is not None:
            body["title"] = title
        if metadata is not None:
            body["metadata"] = metadata
        d = self._client._request("PATCH", f"/api/conversations/{conversation_id}", json=body)
        return Conversation.from_json(d)

    def delete(self, conversation_id: str) -> None:
        self._client._request("DELETE", f"/api/conversations/{conversation_id}")


class AsyncConversations:
    """``AsyncClient.conversations``: the same methods as :class:`Conversations`, awaited."""

    def __init__(self, client: AsyncClient) -> None:
        self._client = client

    async def create(
        self,
        *,
        title: str = "",
        metadata: dict[str, Any] | None = None,
        messages: Iterable[dict[str, Any]] = (),
    ) -> Conversation:
        body = {"title": title, "metadata": metadata or {}, "messages": _clean(messages)}
        return Conversation.from_json(await self._client._request("POST", "/api/conversations", json=body))

    async def get(self, conversation_id: str) -> Conversation:
        d = await self._client._request("GET", f"/api/conversations/{conversation_id}")
        return Conversation.from_json(d)

    async def list(self, *, limit: int = 50, offset: int = 0) -> list[Conversation]:
        params = {"limit": limit, "offset": offset}
        d = await self._client._request("GET", "/api/conversations", params=params)
        return [Conversation.from_json(c) for c in d["data"]]

    async def append(
        self, conversation_id: str, messages: Iterable[dict[str, Any]]
    ) -> builtins.list[StoredMessage]:
        body = {"messages": _clean(messages)}
        d = await self._client._request("POST", f"/api/conversations/{conversation_id}/messages", json=body)
        return [StoredMessage.from_json(m) for m in d["data"]]

    async def update(
        self, conversation_id: str, *, title: str | None = None, metadata: dict[str, Any] | None = None
    ) -> Conversation:
        body: dict[str, Any] = {}
        if title is not None:
            body["title"] = title
        if metadata is not None:
            body["metadata"] = metadata
        d = await self._client._request("PATCH", f"/api/conversations/{conversation_id}", json=body)
        return Conversation.from_json(d)

    async def delete(self, conversation_id: str) -> None:
        await self._client._request("DELETE", f"/api/conversations/{conversation_id}")
