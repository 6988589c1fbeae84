from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from llmos.errors import InvalidRequest, NotFound
from llmos.storage.conversations import ConversationMessage, ConversationRepository
from llmos.storage.db import Database


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 1, 1, tzinfo=UTC)

    def __call__(self) -> datetime:
        self.now += timedelta(seconds=1)
        return self.now


def repo(database: Database) -> ConversationRepository:
    return ConversationRepository(database, clock=Clock())


def test_create_append_and_get_keep_order_and_tool_fields(database: Database) -> None:
    r = repo(database)
    c = r.create(
        "acme", title="t", metadata={"app": "x"}, messages=[ConversationMessage("system", "be brief")]
    )
    assert c.id.startswith("conv_") and c.message_count == 1 and c.messages[0].position == 0
    call = {"id": "call_1", "type": "function", "function": {"name": "calc", "arguments": '{"e": "1+1"}'}}
    added = r.append(
        "acme",
        c.id,
        [
            ConversationMessage("user", "what is 1+1?"),
            ConversationMessage("assistant", None, tool_calls=(call,)),
            ConversationMessage("tool", '{"result": 2}', tool_call_id="call_1"),
        ],
    )
    assert [m.position for m in added] == [1, 2, 3]
    r.append("acme", c.id, [ConversationMessage("assistant", "2")])
    got = r.get("acme", c.id)
    assert [m.role for m in got.messages] == ["system", "user", "assistant", "tool", "assistant"]
    assert got.messages[2].tool_calls == (call,) and got.messages[3].tool_call_id == "call_1"
    assert got.messages[2].content is None and got.messages[2].name is None
    assert got.message_count == 5 and got.metadata == {"app": "x"} and got.updated_at > c.updated_at


def test_another_tenant_sees_nothing(database: Database) -> None:
    r = repo(database)
    c = r.create("acme")
    r.create("acme")
    with pytest.raises(NotFound):
        r.get("globex", c.id)
    with pytest.raises(NotFound):
        r.append("globex", c.id, [ConversationMessage("user", "hi")])
    with pytest.raises(NotFound):
        r.update("globex", c.id, title="mine")
    with pytest.raises(NotFound):
        r.delete("globex", c.id)
    assert r.list("globex") == [] and len(r.list("acme")) == 2
    assert r.get("acme", c.id).title == ""


def test_list_is_most_recent_first_and_paged(database: Database) -> None:
    r = repo(database)
    ids = [r.create("acme", title=str(i)).id for i in range(3)]
    r.append("acme", ids[0], [ConversationMessage("user", "bump")])
    listed = r.list("acme")
    assert [c.id for c in listed] == [ids[0], ids[2], ids[1]] and all(not c.messages for c in listed)
    assert [c.id for c in r.list("acme", limit=1, offset=1)] == [ids[2]]
    with pytest.raises(InvalidRequest):
        r.list("acme", limit=0)


def test_update_and_delete(database: Database) -> None:
    r = repo(database)
    c = r.create("acme", messages=[ConversationMessage("user", "hi")])
    updated = r.update("acme", c.id, title="renamed", metadata={"stage": "idle"})
    assert updated.title == "renamed" and updated.metadata == {"stage": "idle"}
    r.delete("acme", c.id)
    with pytest.raises(NotFound):
        r.get("acme", c.id)


@pytest.mark.parametrize(
    "message",
    [
        ConversationMessage("robot", "x"),
        ConversationMessage("tool", "x"),
        ConversationMessage("user", None),
        ConversationMessage("user", "x", tool_calls=({"id": "c"},)),
    ],
)
def test_malformed_messages_are_refused(database: Database, message: ConversationMessage) -> None:
    r = repo(database)
    c = r.create("acme")
    with pytest.raises(InvalidRequest):
        r.append("acme", c.id, [message])
    with pytest.raises(InvalidRequest):
        r.append("acme", c.id, [])
    assert r.get("acme", c.id).message_count == 0
