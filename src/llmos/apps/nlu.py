"""NLU service: a user's utterance → intent, entities and relations, as schema-valid JSON.

Built only on the public SDK: one chat completion with ``response_format: json_schema`` whose
schema enumerates the intents and entity types, so even a very small model can only answer
with one of them. The schema bounds every list and string, so the longest answer it allows is
known: that is the token budget (:func:`token_budget`), and an answer is never cut off.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from llmos.apps.structured_chat import json_chat
from llmos.sdk import Client

DEFAULT_INTENTS: Mapping[str, str] = {
    "order": "the user wants to buy or order something",
    "recommend": "the user asks for a suggestion or recommendation",
    "ask_price": "the user asks what something costs",
    "weather": "the user asks about the weather",
    "calculate": "the user asks to compute something",
    "greeting": "the user says hello or thanks",
    "refund": "the user wants their money back, or to return or exchange something",
    "complaint": "the user complains about a problem",
    "other": "anything else",
}
DEFAULT_ENTITY_TYPES = ("title", "author", "genre", "person", "city", "number", "date", "product", "other")
MAX_ENTITIES = 4
MAX_RELATIONS = 2
SPAN_CHARS = 30
RELATION_CHARS = 20


def nlu_schema(
    intents: Sequence[str],
    entity_types: Sequence[str],
    *,
    max_entities: int = MAX_ENTITIES,
    max_relations: int = MAX_RELATIONS,
) -> dict[str, Any]:
    """The JSON Schema every NLU answer matches."""
    span = {"type": "string", "minLength": 1, "maxLength": SPAN_CHARS}
    entity = {
        "type": "object",
        "properties": {"text": span, "type": {"type": "string", "enum": list(entity_types)}},
        "required": ["text", "type"],
        "additionalProperties": False,
    }
    relation = {
        "type": "object",
        "properties": {
            "subject": span,
            "relation": {"type": "string", "minLength": 1, "maxLength": RELATION_CHARS},
            "object": span,
        },
        "required": ["subject", "relation", "object"],
        "additionalProperties": False,
    }
    return {
        "type": "object",
        "properties": {
            "intent": {"type": "string", "enum": list(intents)},
            "entities": {"type": "array", "items": entity, "maxItems": max_entities},
            "relations": {"type": "array", "items": relation, "maxItems": max_relations},
        },
        "required": ["intent", "entities", "relations"],
        "additionalProperties": False,
    }


def token_budget(
    intents: Sequence[str], entity_types: Sequence[str], max_entities: int, max_relations: int
) -> int:
    """Tokens enough for the longest answer :func:`nlu_schema` allows (a token is at least one
    character of the compact JSON the server's grammar produces)."""
    span, relation = "x" * SPAN_CHARS, "x" * RELATION_CHARS
    longest = {
        "intent": max(intents, key=len),
        "entities": [{"text": span, "type": max(entity_types, key=len)}] * max_entities,
        "relations": [{"subject": span, "relation": relation, "object": span}] * max_relations,
    }
    return len(json.dumps(longest, separators=(",", ":"))) + 8


@dataclass(frozen=True)
class Entity:
    text: str
    type: str


@dataclass(frozen=True)
class Relation:
    subject: str
    relation: str
    object: str


@dataclass(frozen=True)
class Understanding:
    intent: str
    entities: tuple[Entity, ...]
    relations: tuple[Relation, ...]
    raw: dict[str, Any]
    """The model's answer as it came (valid against :func:`nlu_schema`); ``entities`` keeps only
    those that occur in the message, once each."""

    def first(self, entity_type: str) -> str | None:
        """The text of the first entity of ``entity_type``, if any."""
        return next((e.text for e in self.entities if e.type == entity_type), None)


class NLU:
    """Understands utterances with ``model`` on the server ``client`` talks to."""

    def __init__(
        self,
        client: Client,
        model: str,
        *,
        intents: Mapping[str, str] = DEFAULT_INTENTS,
        entity_types: Sequence[str] = DEFAULT_ENTITY_TYPES,
        max_entities: int = MAX_ENTITIES,
        max_relations: int = MAX_RELATIONS,
        max_tokens: int | None = None,
    ) -> None:
        """``max_tokens`` defaults to the longest answer the schema allows (:func:`token_budget`)."""
        self.client = client
        self.model = model
        self.intents = dict(intents)
        self.entity_types = tuple(entity_types)
        self.schema = nlu_schema(
            list(self.intents), self.entity_types, max_entities=max_entities, max_relations=max_relations
        )
        self.max_tokens = max_tokens or token_budget(
            list(self.intents), self.entity_types, max_entities, max_relations
        )

    def parse(self, text: str) -> Understanding:
        """The intent, entities and relations of ``text``. Raises AppError, or the SDK's errors."""
        described = "; ".join(f"{name}: {meaning}" for name, meaning in self.intents.items())
        system = (
            "You analyse one customer message for a bookshop assistant. Give its intent "
            f"({described}), the entities it mentions (exact words from the message) and the "
            "relations between them."
        )
        messages = [{"role": "system", "content": system}, {"role": "user", "content": text}]
        answer = json_chat(
            self.client, self.model, messages, self.schema, name="nlu", max_tokens=self.max_tokens
        )
        # A small model may invent or repeat: keep the entities the message really contains, once.
        said = text.casefold()
        entities: list[Entity] = []
        for e in answer["entities"]:
            entity = Entity(" ".join(e["text"].split()), e["type"])
            if entity.text and entity.text.casefold() in said and entity not in entities:
                entities.append(entity)
        relations = tuple(
            dict.fromkeys(Relation(r["subject"], r["relation"], r["object"]) for r in answer["relations"])
        )
        return Understanding(
            intent=answer["intent"], entities=tuple(entities), relations=relations, raw=answer
        )
