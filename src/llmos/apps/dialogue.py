"""Dialogue service with tools: an assistant that calls registered tools and remembers each
conversation in the server's database (``client.conversations``).

One turn: load the conversation, send its recent messages plus the user's to the model with the
tools; when the model calls tools, run them (arguments validated against each tool's schema)
and send the results back for the final answer; then append the whole turn to the
conversation at once. Built only on the public SDK.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from llmos.apps.tools import ToolRegistry, default_tools
from llmos.sdk import Client

DEFAULT_SYSTEM = (
    "You are a helpful assistant for a bookshop. Use the tools for weather, arithmetic and the "
    "catalog, and answer with what they return. Be brief."
)
ToolChoice = str | dict[str, Any]


@dataclass(frozen=True)
class ToolInvocation:
    call_id: str
    name: str
    arguments: dict[str, Any] | None
    """The parsed arguments (None when the model's arguments were not JSON)."""
    result: dict[str, Any]
    """``{"result": ...}`` or ``{"error": "..."}`` — what the model was told."""


@dataclass(frozen=True)
class Turn:
    conversation_id: str
    reply: str
    tool_calls: tuple[ToolInvocation, ...] = ()
    messages: tuple[dict[str, Any], ...] = field(default=())
    """The messages this turn appended to the conversation, in order."""


def force_tool(name: str) -> dict[str, Any]:
    """A ``tool_choice`` that makes the model call tool ``name`` (arguments constrained to its schema)."""
    return {"type": "function", "function": {"name": name}}


class Assistant:
    """A tool-using assistant over ``client``; conversations live on the server."""

    def __init__(
        self,
        client: Client,
        model: str,
        tools: ToolRegistry | None = None,
        *,
        system: str = DEFAULT_SYSTEM,
        max_tokens: int = 200,
        tool_max_tokens: int = 160,
        history_window: int = 20,
        temperature: float = 0.0,
    ) -> None:
        self.client = client
        self.model = model
        self.tools = tools if tools is not None else default_tools()
        self.system = system
        self.max_tokens = max_tokens
        self.tool_max_tokens = tool_max_tokens
        self.history_window = history_window
        self.temperature = temperature

    def start(self, *, title: str = "", metadata: dict[str, Any] | None = None) -> str:
        """A new conversation (beginning with the system message); returns its id."""
        conversation = self.client.conversations.create(
            title=title,
            metadata={"app": "dialogue", **(metadata or {})},
            messages=[{"role": "system", "content": self.system}],
        )
        return conversation.id

    def ask(self, conversation_id: str, text: str, *, tool_choice: ToolChoice = "auto") -> Turn:
        """One user turn. ``tool_choice``: ``auto`` (the model decides), ``none``, ``required``, or
        :func:`force_tool` for one tool. Raises the SDK's errors (NotFoundError for an unknown id)."""
        history = self.client.conversations.get(conversation_id).chat_messages()
        new: list[dict[str, Any]] = [{"role": "user", "content": text}]
        invocations: list[ToolInvocation] = []
        gen = self._chat(history, new, tool_choice)
        if gen.tool_calls:
            new.append(gen.message)
            for call in gen.tool_calls:
                invocation = self._run(call)
                invocations.append(invocation)
                new.append(
                    {
                        "role": "tool",
                        "tool_call_id": invocation.call_id,
                        "content": json.dumps(invocation.result),
                    }
                )
            gen = self._chat(history, new, "none")
        reply = gen.text.strip()
        new.append({"role": "assistant", "content": reply})
        self.client.conversations.append(conversation_id, new)
        return Turn(conversation_id, reply, tuple(invocations), tuple(new))

    def _chat(
        self, history: Sequence[dict[str, Any]], new: Sequence[dict[str, Any]], choice: ToolChoice
    ) -> Any:
        messages = [*self._window(history), *new]
        # A tool call's arguments must close within the budget, or the call is lost.
        budget = self.max_tokens if choice == "none" else max(self.max_tokens, self.tool_max_tokens)
        return self.client.chat(
            self.model,
            messages,
            tools=self.tools.specs(),
            tool_choice=choice,
            parallel_tool_calls=False,
            max_tokens=budget,
            temperature=self.temperature,
        )

    def _window(self, history: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
        """The system message plus the most recent messages, never starting inside a tool exchange."""
        system = [m for m in history[:1] if m.get("role") == "system"]
        rest = list(history[len(system) :])[-self.history_window :]
        while rest and rest[0].get("role") == "tool":
            rest.pop(0)
        return [*system, *rest]

    def _run(self, call: dict[str, Any]) -> ToolInvocation:
        function = call.get("function") or {}
        name = str(function.get("name", ""))
        raw = function.get("arguments") or "{}"
        try:
            arguments = json.loads(raw) if isinstance(raw, str) else dict(raw)
        except ValueError:
            arguments = None
        result = self.tools.call(name, raw if arguments is None else arguments)
        return ToolInvocation(str(call.get("id", "")), name, arguments, result)
