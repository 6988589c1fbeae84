"""``/api/conversations`` request and response shapes (the dialogue service's memory)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

Role = Literal["system", "user", "assistant", "tool"]


class MessageIn(BaseModel):
    """A message in chat-completions shape."""

    model_config = ConfigDict(extra="forbid")

    role: Role
    content: str | None = None
    name: str | None = Field(default=None, max_length=200)
    tool_call_id: str | None = Field(default=None, max_length=200)
    tool_calls: list[dict[str, Any]] | None = None


class ConversationCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    title: str = Field(default="", max_length=500)
    metadata: dict[str, Any] = Field(default_factory=dict)
    messages: list[MessageIn] = Field(default_factory=list)


class ConversationUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    title: str | None = Field(default=None, max_length=500)
    metadata: dict[str, Any] | None = None


class AppendMessages(BaseModel):
    model_config = ConfigDict(extra="forbid")

    messages: list[MessageIn] = Field(min_length=1)


class MessageOut(BaseModel):
    position: int
    role: str
    content: str | None
    name: str | None = None
    tool_call_id: str | None = None
    tool_calls: list[dict[str, Any]] | None = None
    created_at: datetime | None


class ConversationOut(BaseModel):
    id: str
    object: Literal["conversation"] = "conversation"
    title: str
    metadata: dict[str, Any]
    message_count: int
    created_at: datetime
    updated_at: datetime
    messages: list[MessageOut] | None = None
    """Every message, in order (on get and create; absent in listings)."""


class ConversationList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ConversationOut]


class AppendResponse(BaseModel):
    object: Literal["list"] = "list"
    data: list[MessageOut]


class DeletedResponse(BaseModel):
    id: str
    object: Literal["conversation.deleted"] = "conversation.deleted"
    deleted: bool = True
