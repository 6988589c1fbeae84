"""NLU service: a user's utterance → intent, entities and relations, as schema-valid JSON.

Built only on the public SDK: one chat completion with ``response_format: json_schema`` whose
schema enumerates the intents and entity types, so even a very small model can only answer
with one of them.
"""

from __future__ import annotations

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
    "complaint": "the user complains about a problem",
    "other": "anything else",
}
DEFAULT_ENTITY_TYPES = ("title", "author", "genre", "person", "city", "number", "date", "product", "other")
MAX_ENTITIES = 4
MAX_RELATIONS = 2


def nlu_schema(intents: Sequence[str], entity_types: Sequence[str]) -> dict[str, Any]:
    """The JSON Schema every NLU answer matches."""
    span = {"type": "string", "minLength": 1, "maxLength": 30}
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
            "relation": {"type": "string", "minLength": 1, "maxLength": 20},
            "object": span,
        },
        "required": ["subject", "relation", "object"],
        "additionalProperties": False,
    }
    return {
        "type": "object",
        "properties": {
            "intent": {"type": "string", "enum": list(intents)},
            "entities": {"type": "array", "items": entity, "maxItems": MAX_ENTITIES},
            "relations": {"type": "array", "items": relation, "maxItems": MAX_RELATIONS},
        },
        "required": ["intent", "entities", "relations"],
        "additionalProperties": False,
    }


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
        max_tokens: int = 300,
    ) -> None:
        self.client = client
        self.model = model
        self.intents = dict(intents)
        self.entity_types = tuple(entity_types)
        self.schema = nlu_schema(list(self.intents), self.entity_types)
        self.max_tokens = max_tokens

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
