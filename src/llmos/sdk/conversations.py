"""``client.conversations``: conversation memory kept by the server, per tenant.

Messages are chat-completions messages (``{"role": ..., "content": ...}``, with ``tool_calls`` or
``tool_call_id`` where they apply), so ``conversation.chat_messages()`` can be sent as-is.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from llmos.sdk._core import Call, Paged, nothing, rows, segment

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


def _stored(messages: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Only the fields the server stores (a chat response's message may carry more)."""
    return [{k: m[k] for k in _MESSAGE_KEYS if m.get(k) is not None or k == "content"} for m in messages]


def _conv(conversation_id: str) -> str:
    return f"/api/conversations/{segment(conversation_id)}"


def create(
    title: str, metadata: dict[str, Any] | None, messages: Iterable[dict[str, Any]]
) -> Call[Conversation]:
    body = {"title": title, "metadata": metadata or {}, "messages": _stored(messages)}
    return Call("POST", "/api/conversations", Conversation.from_json, json=body)


def get(conversation_id: str) -> Call[Conversation]:
    return Call("GET", _conv(conversation_id), Conversation.from_json)


def list_page(offset: int, limit: int) -> Call[list[Conversation]]:
    params = {"limit": limit, "offset": offset}
    return Call("GET", "/api/conversations", rows(Conversation.from_json), params=params)


def every(page_size: int) -> Paged[Conversation]:
    """Every conversation of this tenant, most recently updated first, page by page."""
    return Paged(list_page, size=page_size)


def append(conversation_id: str, messages: Iterable[dict[str, Any]]) -> Call[list[StoredMessage]]:
    body = {"messages": _stored(messages)}
    return Call("POST", f"{_conv(conversation_id)}/messages", rows(StoredMessage.from_json), json=body)


def update(conversation_id: str, title: str | None, metadata: dict[str, Any] | None) -> Call[Conversation]:
    body: dict[str, Any] = {}
    if title is not None:
        body["title"] = title
    if metadata is not None:
        body["metadata"] = metadata
    return Call("PATCH", _conv(conversation_id), Conversation.from_json, json=body)


def delete(conversation_id: str) -> Call[None]:
    return Call("DELETE", _conv(conversation_id), nothing)
