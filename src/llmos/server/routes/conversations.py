"""``/api/conversations``: the dialogue service's memory, per tenant (scope ``inference``).

A conversation of another tenant answers 404, exactly like one that does not exist.
"""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Query

from llmos.server.auth import PrincipalDep
from llmos.server.routes.deps import KernelDep
from llmos.server.schemas.common import ErrorResponse
from llmos.server.schemas.conversations import (
    AppendMessages,
    AppendResponse,
    ConversationCreate,
    ConversationList,
    ConversationOut,
    ConversationUpdate,
    DeletedResponse,
    MessageIn,
    MessageOut,
)
from llmos.storage.conversations import Conversation, ConversationMessage

router = APIRouter(prefix="/api/conversations", tags=["conversations"])
_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorResponse},
    403: {"model": ErrorResponse},
    404: {"model": ErrorResponse},
}


def _domain(m: MessageIn) -> ConversationMessage:
    return ConversationMessage(
        role=m.role,
        content=m.content,
        name=m.name,
        tool_call_id=m.tool_call_id,
        tool_calls=tuple(m.tool_calls) if m.tool_calls else None,
    )


def _message(m: ConversationMessage) -> MessageOut:
    return MessageOut(
        position=m.position,
        role=m.role,
        content=m.content,
        name=m.name,
        tool_call_id=m.tool_call_id,
        tool_calls=list(m.tool_calls) if m.tool_calls else None,
        created_at=m.created_at,
    )


def _conversation(c: Conversation, *, with_messages: bool) -> ConversationOut:
    return ConversationOut(
        id=c.id,
        title=c.title,
        metadata=c.metadata,
        message_count=c.message_count,
        created_at=c.created_at,
        updated_at=c.updated_at,
        messages=[_message(m) for m in c.messages] if with_messages else None,
    )


@router.post("", response_model=ConversationOut, status_code=201, responses=_ERRORS)
async def create_conversation(
    body: ConversationCreate, kernel: KernelDep, principal: PrincipalDep
) -> ConversationOut:
    principal.require("inference")
    created = await asyncio.to_thread(
        kernel.conversations.create,
        principal.tenant,
        title=body.title,
        metadata=body.metadata,
        messages=[_domain(m) for m in body.messages],
    )
    return _conversation(created, with_messages=True)


@router.get("", response_model=ConversationList, responses=_ERRORS)
async def list_conversations(
    kernel: KernelDep,
    principal: PrincipalDep,
    limit: int = Query(default=50, ge=1, le=200),
    offset: int = Query(default=0, ge=0),
) -> ConversationList:
    principal.require("inference")
    found = await asyncio.to_thread(kernel.conversations.list, principal.tenant, limit=limit, offset=offset)
    return ConversationList(data=[_conversation(c, with_messages=False) for c in found])


@router.get("/{conversation_id}", response_model=ConversationOut, responses=_ERRORS)
async def get_conversation(
    conversation_id: str, kernel: KernelDep, principal: PrincipalDep
) -> ConversationOut:
    principal.require("inference")
    found = await asyncio.to_thread(kernel.conversations.get, principal.tenant, conversation_id)
    return _conversation(found, with_messages=True)


@router.patch("/{conversation_id}", response_model=ConversationOut, responses=_ERRORS)
async def update_conversation(
    conversation_id: str, body: ConversationUpdate, kernel: KernelDep, principal: PrincipalDep
) -> ConversationOut:
    principal.require("inference")
    updated = await asyncio.to_thread(
        kernel.conversations.update,
        principal.tenant,
        conversation_id,
        title=body.title,
        metadata=body.metadata,
    )
    return _conversation(updated, with_messages=False)


@router.post("/{conversation_id}/messages", response_model=AppendResponse, responses=_ERRORS)
async def append_messages(
    conversation_id: str, body: AppendMessages, kernel: KernelDep, principal: PrincipalDep
) -> AppendResponse:
    principal.require("inference")
    added = await asyncio.to_thread(
        kernel.conversations.append, principal.tenant, conversation_id, [_domain(m) for m in body.messages]
    )
    return AppendResponse(data=[_message(m) for m in added])


@router.delete("/{conversation_id}", response_model=DeletedResponse, responses=_ERRORS)
async def delete_conversation(
    conversation_id: str, kernel: KernelDep, principal: PrincipalDep
) -> DeletedResponse:
    principal.require("inference")
    await asyncio.to_thread(kernel.conversations.delete, principal.tenant, conversation_id)
    return DeletedResponse(id=conversation_id)
