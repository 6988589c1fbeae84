"""The tasks: what each asks the model, the JSON Schema its answer must match, and how the
answer is formatted afterwards.

A :class:`TaskDefinition` turns (input text, params) into a :class:`TaskSpec` for one request.
The schema is what the generation is constrained to (a grammar), so even a very small model
answers with JSON that parses; string lengths are bounded so the JSON always closes within the
spec's ``max_tokens``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from llmos.errors import NotFound
from llmos.tasks.param_readers import bool_param, check_known, int_param, labels_param, text_param

JSONObject = dict[str, Any]
PostProcess = Callable[[JSONObject, str], JSONObject]
"""(the model's validated answer, the prepared input text) → the formatted output."""

DEFAULT_ENTITY_TYPES = ("person", "organization", "location", "date", "product", "event", "other")
SENTIMENTS = ("positive", "negative", "neutral")
_SPACES = re.compile(r"\s+")


@dataclass(frozen=True)
class TaskSpec:
    """One task request, ready to generate."""

    system: str
    user: str
    schema: JSONObject
    max_tokens: int
    """Enough tokens for the longest answer the schema allows (at ~2 characters per token)."""
    postprocess: PostProcess


class TaskDefinition(Protocol):
    @property
    def name(self) -> str: ...

    @property
    def description(self) -> str: ...

    @property
    def params(self) -> tuple[str, ...]:
        """The names of the parameters the task takes."""
        ...

    def build(self, text: str, params: Mapping[str, Any]) -> TaskSpec:
        """The spec for ``text``. Raises InvalidRequest (``param`` = ``params.<name>``) for bad params."""
        ...


def _object(properties: JSONObject) -> JSONObject:
    return {
        "type": "object",
        "properties": properties,
        "required": list(properties),
        "additionalProperties": False,
    }


def _budget(max_chars: int) -> int:
    return math.ceil(max_chars / 2) + 24


def _tidy(text: str) -> str:
    """One line of text: runs of whitespace become one space; surrounding quotes go."""
    text = _SPACES.sub(" ", text).strip()
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "\"'“”«»":
        text = text[1:-1].strip()
    return text


def _limit_words(text: str, max_words: int) -> str:
    words = text.split(" ")
    if len(words) <= max_words:
        return text
    return " ".join(words[:max_words]).rstrip(",;:") + "…"


def _text_answer(
    system: str, text: str, key: str, *, max_chars: int, finish: Callable[[str], str] = lambda t: t
) -> TaskSpec:
    """A task whose answer is one string ``key`` of at most ``max_chars`` characters, tidied to
    one line and then ``finish``-ed."""

    def post(answer: JSONObject, _: str) -> JSONObject:
        return {key: finish(_tidy(answer[key]))}

    return TaskSpec(
        system=system,
        user=text,
        schema=_object({key: {"type": "string", "minLength": 1, "maxLength": max_chars}}),
        max_tokens=_budget(max_chars),
        postprocess=post,
    )


@dataclass(frozen=True)
class Summarize:
    name: str = "summarize"
    description: str = "A faithful summary of the text in at most max_words words."
    params: tuple[str, ...] = ("max_words",)

    def build(self, text: str, params: Mapping[str, Any]) -> TaskSpec:
        check_known(params, self.params, self.name)
        max_words = int_param(params, "max_words", default=60, low=5, high=500)
        return _text_answer(
            f"You summarize texts. Write a faithful summary of the user's text in at most {max_words} "
            "words, in the same language as the text. Do not add facts that are not in the text.",
            text,
            "summary",
            max_chars=max_words * 9,
            finish=lambda summary: _limit_words(summary, max_words),
        )


@dataclass(frozen=True)
class Translate:
    name: str = "translate"
    description: str = "The text translated into target_language (from source_language, if given)."
    params: tuple[str, ...] = ("target_language", "source_language")

    def build(self, text: str, params: Mapping[str, Any]) -> TaskSpec:
        check_known(params, self.params, self.name)
        target = text_param(params, "target_language", required=True, max_chars=64)
        source = text_param(params, "source_language", max_chars=64)
        origin = f" from {source}" if source else ""
        return _text_answer(
            f"You are a translator. Translate the user's text{origin} into {target}. "
            "Keep the meaning, names and numbers; translate everything, add nothing.",
            text,
            "translation",
            max_chars=min(2 * len(text) + 64, 4000),
        )


@dataclass(frozen=True)
class Classify:
    name: str = "classify"
    description: str = "The label (or, with multi_label, the labels) of the given labels that fit the text."
    params: tuple[str, ...] = ("labels", "multi_label")

    def build(self, text: str, params: Mapping[str, Any]) -> TaskSpec:
        check_known(params, self.params, self.name)
        labels = labels_param(params, "labels", required=True, min_count=2)
        multi = bool_param(params, "multi_label", default=False)
        listed = ", ".join(labels)
        label_chars = max(len(label) for label in labels) + 4
        if multi:
            schema = _object(
                {
                    "labels": {
                        "type": "array",
                        "items": {"type": "string", "enum": labels},
                        "minItems": 1,
                        "maxItems": len(labels),
                    }
                }
            )
            instruction = f"Choose every label that applies, from: {listed}."
            budget = _budget(label_chars * len(labels))
        else:
            schema = _object({"label": {"type": "string", "enum": labels}})
            instruction = f"Choose the one label that fits best, from: {listed}."
            budget = _budget(label_chars)

        def post(answer: JSONObject, _: str) -> JSONObject:
            if multi:
                chosen = set(answer["labels"])
                return {"labels": [label for label in labels if label in chosen]}
            return {"label": answer["label"]}

        return TaskSpec(
            system=f"You classify texts. {instruction}",
            user=text,
            schema=schema,
            max_tokens=budget,
            postprocess=post,
        )


@dataclass(frozen=True)
class Sentiment:
    name: str = "sentiment"
    description: str = "Whether the text's sentiment is positive, negative or neutral."
    params: tuple[str, ...] = ()

    def build(self, text: str, params: Mapping[str, Any]) -> TaskSpec:
        check_known(params, self.params, self.name)
        schema = _object({"sentiment": {"type": "string", "enum": list(SENTIMENTS)}})
        return TaskSpec(
            system=(
                "You judge the sentiment of texts: positive, negative or neutral "
                "(neutral when the text states facts without feeling)."
            ),
            user=text,
            schema=schema,
            max_tokens=_budget(20),
            postprocess=lambda answer, _: {"sentiment": answer["sentiment"]},
        )


@dataclass(frozen=True)
class ExtractEntities:
    name: str = "extract_entities"
    description: str = "The named entities in the text, each with its type; only ones that occur in it."
    params: tuple[str, ...] = ("types", "max_entities")

    def build(self, text: str, params: Mapping[str, Any]) -> TaskSpec:
        check_known(params, self.params, self.name)
        types = labels_param(params, "types", required=False, default=DEFAULT_ENTITY_TYPES, max_chars=40)
        max_entities = int_param(params, "max_entities", default=10, low=1, high=50)
        entity = _object(
            {
                "text": {"type": "string", "minLength": 1, "maxLength": 60},
                "type": {"type": "string", "enum": types},
            }
        )
        schema = _object({"entities": {"type": "array", "items": entity, "maxItems": max_entities}})
        type_chars = max(len(t) for t in types)

        def post(answer: JSONObject, source: str) -> JSONObject:
            # Keep what the text really contains (a small model may invent), once each.
            haystack = source.casefold()
            seen: set[tuple[str, str]] = set()
            out = []
            for e in answer["entities"]:
                name = _tidy(e["text"])
                key = (name.casefold(), e["type"])
                if name and name.casefold() in haystack and key not in seen:
                    seen.add(key)
                    out.append({"text": name, "type": e["type"]})
            return {"entities": out}

        return TaskSpec(
            system=(
                "You extract named entities from texts. List each entity exactly as it is written in the "
                f"text, with its type, one of: {', '.join(types)}. List nothing that is not in the text."
            ),
            user=text,
            schema=schema,
            max_tokens=_budget(max_entities * (60 + type_chars + 24)),
            postprocess=post,
        )


_ALL: tuple[TaskDefinition, ...] = (Summarize(), Translate(), Classify(), Sentiment(), ExtractEntities())
TASKS: Mapping[str, TaskDefinition] = {t.name: t for t in _ALL}
"""Every task, by the name it has in ``POST /api/tasks/{name}``."""


def get_task(name: str) -> TaskDefinition:
    """The task called ``name``. Raises NotFound naming the tasks there are."""
    try:
        return TASKS[name]
    except KeyError:
        raise NotFound(
            f"no task named {name!r}; the tasks are: {', '.join(sorted(TASKS))}", param="task"
        ) from None
