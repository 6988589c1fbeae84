"""The conversation repository: the dialogue service's per-tenant memory.

Every method is one transaction and takes the tenant: a conversation of another tenant is
reported exactly like one that does not exist (NotFound), so ids leak nothing across tenants.
"""

from __future__ import annotations

import builtins
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError as RowConflict
from sqlalchemy.orm import Session

from llmos.errors import Conflict, InvalidRequest, NotFound
from llmos.storage.db import Database
from llmos.storage.rows_apps import ConversationMessageRow, ConversationRow

ROLES = ("system", "user", "assistant", "tool")
MAX_MESSAGES = 2000
"""Messages one conversation may hold (memory is for dialogue, not for bulk storage)."""
MAX_LIST = 200


@dataclass(frozen=True)
class ConversationMessage:
    """One message in OpenAI's chat shape, with its place in the conversation."""

    role: str
    content: str | None = None
    name: str | None = None
    tool_call_id: str | None = None
    tool_calls: tuple[dict[str, Any], ...] | None = None
    position: int = 0
    created_at: datetime | None = None


@dataclass(frozen=True)
class Conversation:
    id: str
    tenant: str
    title: str
    metadata: dict[str, Any]
    message_count: int
    created_at: datetime
    updated_at: datetime
    messages: tuple[ConversationMessage, ...] = field(default=())
    """Empty in listings; every message, in order, from :meth:`ConversationRepository.get`."""


def _utc(value: datetime) -> datetime:
    # SQLite hands back naive datetimes; everything stored is UTC.
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def _message(row: ConversationMessageRow) -> ConversationMessage:
    return ConversationMessage(
        role=row.role,
        content=row.content,
        name=row.name,
        tool_call_id=row.tool_call_id,
        tool_calls=tuple(row.tool_calls) if row.tool_calls else None,
        position=row.position,
        created_at=_utc(row.created_at),
    )


def _conversation(row: ConversationRow, *, with_messages: bool) -> Conversation:
    return Conversation(
        id=row.id,
        tenant=row.tenant,
        title=row.title,
        metadata=dict(row.extra or {}),
        message_count=row.message_count,
        created_at=_utc(row.created_at),
        updated_at=_utc(row.updated_at),
        messages=tuple(_message(m) for m in row.messages) if with_messages else (),
    )


def _check(message: ConversationMessage, index: int) -> None:
    where = f"messages[{index}]"
    if message.role not in ROLES:
        raise InvalidRequest(f"{where}.role must be one of {', '.join(ROLES)}", param=f"{where}.role")
    if message.role == "tool" and not message.tool_call_id:
        raise InvalidRequest(f"{where}: a tool message needs tool_call_id", param=f"{where}.tool_call_id")
    if message.tool_calls and message.role != "assistant":
        raise InvalidRequest(
            f"{where}: only assistant messages carry tool_calls", param=f"{where}.tool_calls"
        )
    if message.content is None and not message.tool_calls:
        raise InvalidRequest(f"{where}.content is required", param=f"{where}.content")


class ConversationRepository:
    """Conversations and their messages, always scoped to a tenant."""

    def __init__(
        self,
        db: Database,
        *,
        clock: Callable[[], datetime] | None = None,
        new_id: Callable[[], str] | None = None,
    ) -> None:
        self._db = db
        self._clock = clock or (lambda: datetime.now(UTC))
        self._new_id = new_id or (lambda: "conv_" + uuid.uuid4().hex)

    def create(
        self,
        tenant: str,
        *,
        title: str = "",
        metadata: Mapping[str, Any] | None = None,
        messages: Sequence[ConversationMessage] = (),
    ) -> Conversation:
        """A new conversation of ``tenant`` (optionally with first messages). Raises InvalidRequest."""
        for i, m in enumerate(messages):
            _check(m, i)
        if len(messages) > MAX_MESSAGES:
            raise InvalidRequest(f"a conversation holds at most {MAX_MESSAGES} messages", param="messages")
        now = self._clock()
        with self._db.session() as s:
            row = ConversationRow(
                id=self._new_id(),
                tenant=tenant,
                title=title,
                extra=dict(metadata or {}),
                message_count=0,
                created_at=now,
                updated_at=now,
            )
            s.add(row)
            self._add_messages(s, row, messages, now)
            s.flush()
            return _conversation(row, with_messages=True)

    def get(self, tenant: str, conversation_id: str) -> Conversation:
        """The conversation with every message, in order. Raises NotFound."""
        with self._db.session() as s:
            return _conversation(self._row(s, tenant, conversation_id), with_messages=True)

    def list(self, tenant: str, *, limit: int = 50, offset: int = 0) -> list[Conversation]:
        """``tenant``'s conversations, most recently updated first (without their messages)."""
        if not 1 <= limit <= MAX_LIST:
            raise InvalidRequest(f"limit must be between 1 and {MAX_LIST}", param="limit")
        if offset < 0:
            raise InvalidRequest("offset must not be negative", param="offset")
        with self._db.session() as s:
            rows = s.scalars(
                select(ConversationRow)
                .where(ConversationRow.tenant == tenant)
                .order_by(ConversationRow.updated_at.desc(), ConversationRow.id)
                .limit(limit)
                .offset(offset)
            )
            return [_conversation(r, with_messages=False) for r in rows]

    def append(
        self, tenant: str, conversation_id: str, messages: Sequence[ConversationMessage]
    ) -> builtins.list[ConversationMessage]:
        """Append ``messages`` at the end, atomically; returns them with their positions.

        Raises NotFound, InvalidRequest (a malformed message, or over :data:`MAX_MESSAGES`),
        Conflict (another writer appended at the same moment; retry).
        """
        if not messages:
            raise InvalidRequest("messages must not be empty", param="messages")
        for i, m in enumerate(messages):
            _check(m, i)
        now = self._clock()
        try:
            with self._db.session() as s:
                row = self._row(s, tenant, conversation_id, lock=True)
                if row.message_count + len(messages) > MAX_MESSAGES:
                    raise InvalidRequest(
                        f"a conversation holds at most {MAX_MESSAGES} messages", param="messages"
                    )
                added = self._add_messages(s, row, messages, now)
                row.updated_at = now
                s.flush()
                return [_message(r) for r in added]
        except RowConflict as exc:  # two appends took the same positions (SQLite has no row locks)
            raise Conflict("the conversation changed while appending; retry", param="messages") from exc

    def update(
        self,
        tenant: str,
        conversation_id: str,
        *,
        title: str | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> Conversation:
        """Set the title and/or replace the metadata. Raises NotFound."""
        with self._db.session() as s:
            row = self._row(s, tenant, conversation_id)
            if title is not None:
                row.title = title
            if metadata is not None:
                row.extra = dict(metadata)
            row.updated_at = self._clock()
            s.flush()
            return _conversation(row, with_messages=False)

    def delete(self, tenant: str, conversation_id: str) -> None:
        """Delete the conversation and its messages. Raises NotFound."""
        with self._db.session() as s:
            s.delete(self._row(s, tenant, conversation_id))

    # ---- internals -----------------------------------------------------------------------

    @staticmethod
    def _row(s: Session, tenant: str, conversation_id: str, *, lock: bool = False) -> ConversationRow:
        query = select(ConversationRow).where(
            ConversationRow.id == conversation_id, ConversationRow.tenant == tenant
        )
        if lock:
            query = query.with_for_update()
        row = s.scalars(query).one_or_none()
        if row is None:
            raise NotFound(f"no conversation {conversation_id!r}", param="conversation_id")
        return row

    @staticmethod
    def _add_messages(
        s: Session, row: ConversationRow, messages: Sequence[ConversationMessage], now: datetime
    ) -> builtins.list[ConversationMessageRow]:
        added: builtins.list[ConversationMessageRow] = []
        for m in messages:
            msg = ConversationMessageRow(
                conversation_id=row.id,
                position=row.message_count,
                role=m.role,
                content=m.content,
                name=m.name,
                tool_call_id=m.tool_call_id,
                tool_calls=[dict(c) for c in m.tool_calls] if m.tool_calls else None,
                created_at=now,
            )
            s.add(msg)
            added.append(msg)
            row.message_count += 1
        return added
