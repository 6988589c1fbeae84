"""Customer-service bot: NLU, recommendations and the tool-using assistant, combined.

A new conversation opens with the bot's greeting (:data:`GREETING`): who it is and what it does.
Refunds, returns and complaints are handed off to a person (recorded on the conversation with a
reference the customer is given), never taken into the ordering flow, at any stage.
The "I want to order a novel" flow: NLU finds the intent (order) and no title → the bot asks
which one, suggesting a few (recommendations) → the customer names one (a title, or "the second
one") → the bot quotes the price **from the catalog** and asks to confirm → the order is noted.
Other requests (weather, arithmetic, catalog questions) go to the assistant with its tools.
The conversation and the bot's state (stage, suggestions, chosen item) live on the server
(``client.conversations``: the messages, and the conversation's metadata). Built only on the
public SDK.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from typing import Any

from llmos.apps.catalog import Catalog, Item, load_catalog, words
from llmos.apps.dialogue import Assistant
from llmos.apps.nlu import NLU, Understanding
from llmos.apps.recommend import Recommender
from llmos.apps.structured_chat import AppError
from llmos.sdk import Client
from llmos.sdk.errors import APIStatusError

log = logging.getLogger(__name__)

GREETING = (
    "Hello! I'm the assistant of the llmos bookshop. I can suggest books, tell you their prices and take "
    "your order; refunds and complaints I pass on to a person on our team. What can I do for you?"
)
ORDER_WORDS = re.compile(r"\b(order|buy|purchase|get me|i'?ll take)\b", re.IGNORECASE)
"""An explicit buying verb decides the intent even when a small model's NLU misses it."""
HANDOFF_WORDS = re.compile(
    r"\b(refunds?|money back|reimburse\w*|return(s|ed|ing)?|exchange|complain(t|ts|ed|ing)?|broken|damaged|"
    r"torn|defective|faulty|never (arrived|came)|not (arrived|received)|wrong (book|item|order|title)|"
    r"cancel (my|the|an|this) order|(speak|talk) to (a |an )?(human|person|manager|someone))\b",
    re.IGNORECASE,
)
"""What a person must handle: these never go into the ordering flow, whatever a verb says."""
HANDOFF_INTENTS = frozenset({"refund", "complaint"})
YES = frozenset({"yes", "yeah", "yep", "sure", "ok", "okay", "please", "confirm", "go"})
NO = frozenset({"no", "nope", "cancel", "not", "don't", "dont"})
ORDINALS = {"first": 0, "1": 0, "one": 0, "second": 1, "2": 1, "two": 1, "third": 2, "3": 2, "three": 2}
STATE_KEY = "support"


@dataclass(frozen=True)
class SupportReply:
    text: str
    stage: str
    """``idle``, ``awaiting_title`` (asked which one) or ``awaiting_confirmation`` (price quoted)."""
    intent: str | None = None
    handoff: str | None = None
    """The reference of the hand-off to a person (refunds, complaints), if this reply made one."""
    item: Item | None = None
    """The item whose catalog price was quoted, if one was."""
    suggestions: tuple[Item, ...] = field(default=())


class SupportBot:
    """Answers a customer in a conversation kept on the server."""

    def __init__(
        self,
        client: Client,
        model: str,
        catalog: Catalog | None = None,
        *,
        embedding_model: str = "minilm:l6",
        n_suggestions: int = 2,
    ) -> None:
        self.client = client
        self.catalog = catalog if catalog is not None else load_catalog()
        # The bot reads an intent and a title: two entities, no relations, a short answer.
        self.nlu = NLU(client, model, max_entities=2, max_relations=0)
        self.recommender = Recommender(client, model, self.catalog, embedding_model=embedding_model)
        self.assistant = Assistant(client, model)
        self.n_suggestions = n_suggestions

    def start(self) -> str:
        """A new customer conversation, opened with the bot's :data:`GREETING`; returns its id."""
        cid = self.assistant.start(title="support", metadata={"app": "support", STATE_KEY: {"stage": "idle"}})
        self.client.conversations.append(cid, [{"role": "assistant", "content": GREETING}])
        return cid

    def respond(self, conversation_id: str, text: str) -> SupportReply:
        """The bot's answer to ``text``. Raises the SDK's errors (NotFoundError for an unknown id)."""
        conversation = self.client.conversations.get(conversation_id)
        state: dict[str, Any] = dict(conversation.metadata.get(STATE_KEY) or {"stage": "idle"})
        stage = state.get("stage", "idle")
        reply: SupportReply | None
        if HANDOFF_WORDS.search(text):
            reply = self._hand_off(conversation_id, conversation.metadata, _handoff_reason(text))
        elif stage == "awaiting_title":
            reply = self._choose(text, state)
        elif stage == "awaiting_confirmation":
            reply = self._confirm(text, state)
        else:
            reply = self._understand(conversation_id, text, conversation.metadata)
            if reply is None:  # handed to the assistant, which keeps the conversation itself
                return SupportReply(
                    self.client.conversations.get(conversation_id).messages[-1].content or "", "idle", "other"
                )
        new_state: dict[str, Any] = {"stage": reply.stage}
        if reply.suggestions:
            new_state["suggested"] = [i.id for i in reply.suggestions]
        if reply.item is not None:
            new_state["item"] = reply.item.id
        metadata = {**conversation.metadata, STATE_KEY: new_state}
        if reply.handoff is not None:
            handoff = {"reference": reply.handoff, "reason": reply.intent, "message": text}
            metadata["handoffs"] = [*conversation.metadata.get("handoffs", []), handoff]
        self.client.conversations.append(
            conversation_id, [{"role": "user", "content": text}, {"role": "assistant", "content": reply.text}]
        )
        self.client.conversations.update(conversation_id, metadata=metadata)
        return reply

    # ---- stages --------------------------------------------------------------------------

    def _understand(self, conversation_id: str, text: str, metadata: dict[str, Any]) -> SupportReply | None:
        understanding: Understanding | None
        try:
            understanding = self.nlu.parse(text)
            intent = understanding.intent
        except (AppError, APIStatusError) as exc:
            log.info("NLU failed (%s); using the rules alone", exc)
            understanding, intent = None, "other"
        if intent in HANDOFF_INTENTS:
            return self._hand_off(conversation_id, metadata, intent)
        if intent not in ("order", "ask_price", "recommend") and ORDER_WORDS.search(text):
            intent = "order"
        if intent not in ("order", "ask_price", "recommend"):
            self.assistant.ask(conversation_id, text)
            return None
        item = self._named_item(text, understanding)
        if item is not None and intent != "recommend":
            return self._quote(item, intent)
        suggestions = self._suggest(text)
        lines = "\n".join(
            f"{n}. {i.title} by {i.author} ({i.genre}, {i.price_text})" for n, i in enumerate(suggestions, 1)
        )
        question = (
            "Which one would you like?" if intent != "recommend" else "Would you like to order one of them?"
        )
        return SupportReply(
            f"{question} Here are some suggestions:\n{lines}\nYou can also name any other title.",
            "awaiting_title",
            intent,
            suggestions=tuple(suggestions),
        )

    def _choose(self, text: str, state: dict[str, Any]) -> SupportReply:
        suggested = [self.catalog.get(i) for i in state.get("suggested", []) if i in self.catalog]
        item = self._ordinal(text, suggested) or self.catalog.find_title(text)
        if item is None:
            try:
                item = self._named_item(text, self.nlu.parse(text))
            except (AppError, APIStatusError):
                item = None
        if item is None:
            names = "; ".join(i.title for i in suggested)
            hint = f" (for example: {names})" if names else ""
            return SupportReply(
                f"Sorry, I could not find that title in our catalog. Which book would you like{hint}?",
                "awaiting_title",
                "order",
                suggestions=tuple(suggested),
            )
        return self._quote(item, "order")

    @staticmethod
    def _hand_off(conversation_id: str, metadata: dict[str, Any], reason: str) -> SupportReply:
        done = len(metadata.get("handoffs", []))
        reference = f"H-{conversation_id.rsplit('_', 1)[-1][-6:].upper()}-{done + 1}"
        what = "refund request" if reason == "refund" else "complaint"
        return SupportReply(
            f"I'm sorry about that. I can't settle a {what} myself, so I have passed your message to a "
            f"person on our team (reference {reference}); they will answer you within one working day. "
            "Can I help with anything else?",
            "idle",
            reason,
            handoff=reference,
        )

    def _confirm(self, text: str, state: dict[str, Any]) -> SupportReply:
        item = self.catalog.get(state["item"]) if state.get("item") in self.catalog else None
        said = set(words(text))
        if item is not None and said & YES and not said & NO:
            return SupportReply(
                f"Done: your order for “{item.title}” ({item.price_text}) is noted. Anything else?",
                "idle",
                "order",
                item=item,
            )
        return SupportReply(
            "No problem, nothing was ordered. Can I help with anything else?", "idle", "order"
        )

    # ---- helpers -------------------------------------------------------------------------

    def _quote(self, item: Item, intent: str) -> SupportReply:
        # The price comes from the catalog, never from a model's text.
        text = f"“{item.title}” by {item.author} costs {item.price_text}."
        if intent == "ask_price":
            return SupportReply(text, "idle", intent, item=item)
        return SupportReply(text + " Shall I order it for you?", "awaiting_confirmation", intent, item=item)

    def _named_item(self, text: str, understanding: Understanding | None) -> Item | None:
        item = self.catalog.find_title(text)
        if item is None and understanding is not None:
            title = understanding.first("title") or understanding.first("product")
            if title:
                item = self.catalog.find_title(title)
        return item

    def _suggest(self, text: str) -> list[Item]:
        try:
            rec = self.recommender.recommend(text, n=self.n_suggestions)
            picks = [p.item for p in rec.picks]
        except (AppError, APIStatusError) as exc:
            log.info("recommendation failed (%s); suggesting by keywords", exc)
            picks = []
        if len(picks) < self.n_suggestions:
            novels = [i for i in self.catalog.search(text, limit=10) if i.kind == "novel" and i not in picks]
            picks += novels[: self.n_suggestions - len(picks)]
        return picks[: self.n_suggestions]

    @staticmethod
    def _ordinal(text: str, suggested: list[Item]) -> Item | None:
        for word in words(text):
            index = ORDINALS.get(word)
            if index is not None and index < len(suggested):
                return suggested[index]
        return None


def _handoff_reason(text: str) -> str:
    money = re.search(
        r"\b(refunds?|money back|reimburse\w*|return(s|ed|ing)?|exchange)\b", text, re.IGNORECASE
    )
    return "refund" if money else "complaint"
