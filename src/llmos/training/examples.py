"""Training examples from a JSONL dataset: rendered with the base model's chat template,
tokenized, and labelled so that the loss falls on the assistant turns only.

Each line is chat form (``{"messages": [...]}``, OpenAI's fine-tuning format) or
prompt/completion form (read as one user and one assistant message). A line's assistant spans
are found by rendering the conversation up to each assistant turn twice — with the generation
prompt, and with the turn — so whatever the template wraps around a turn (role headers, end
tokens) is labelled exactly as the model must produce it at inference.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from llmos.errors import InvalidRequest

IGNORE = -100
"""The label of a token the loss skips (PyTorch's cross-entropy ``ignore_index``)."""

Render = Callable[[Sequence[dict[str, Any]], bool], str]
"""Render messages to prompt text (``add_generation_prompt`` second)."""


class OffsetTokenizer(Protocol):
    """What examples need of a tokenizer: ids with each token's character span."""

    def __call__(self, text: str, **kwargs: Any) -> Any: ...


@dataclass(frozen=True)
class Example:
    input_ids: tuple[int, ...]
    labels: tuple[int, ...]

    @property
    def trained_tokens(self) -> int:
        return sum(1 for x in self.labels if x != IGNORE)


def read_conversations(path: Path) -> list[list[dict[str, Any]]]:
    """The dataset's lines as message lists. Raises InvalidRequest naming a bad line."""
    out: list[list[dict[str, Any]]] = []
    for number, raw in enumerate(path.read_bytes().split(b"\n"), start=1):
        if not raw.strip():
            continue
        try:
            value = json.loads(raw)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise InvalidRequest(f"line {number} of the dataset is not JSON: {exc}", param="file") from exc
        if isinstance(value, dict) and isinstance(value.get("messages"), list):
            messages = [
                {"role": str(m.get("role")), "content": str(m.get("content") or "")}
                for m in value["messages"]
                if isinstance(m, dict)
            ]
        elif isinstance(value, dict) and "prompt" in value:
            messages = [
                {"role": "user", "content": str(value.get("prompt", ""))},
                {"role": "assistant", "content": str(value.get("completion", ""))},
            ]
        else:
            raise InvalidRequest(f"line {number}: expected chat or prompt/completion form", param="file")
        if not any(m["role"] == "assistant" and m["content"].strip() for m in messages):
            raise InvalidRequest(f"line {number}: no assistant message to learn from", param="file")
        out.append(messages)
    return out


def assistant_spans(messages: Sequence[dict[str, Any]], render: Render) -> tuple[str, list[tuple[int, int]]]:
    """The whole conversation's text and the character spans of its assistant turns."""
    text = render(messages, False)
    spans: list[tuple[int, int]] = []
    for i, m in enumerate(messages):
        if m["role"] != "assistant":
            continue
        before = render(messages[:i], True)
        through = render(messages[: i + 1], False)
        if not (text.startswith(through) and through.startswith(before)):
            raise InvalidRequest(
                "the base model's chat template does not render a conversation as a prefix of its "
                "continuation, so assistant turns cannot be told apart; train a model with another template",
                param="model",
            )
        if len(through) > len(before):
            spans.append((len(before), len(through)))
    return text, spans


def build_examples(
    conversations: Sequence[Sequence[dict[str, Any]]],
    render: Render,
    tokenizer: OffsetTokenizer,
    max_seq_len: int,
) -> list[Example]:
    """Tokenized, labelled, truncated to ``max_seq_len``; an example left with no assistant
    token after truncation is dropped."""
    out: list[Example] = []
    for messages in conversations:
        text, spans = assistant_spans(messages, render)
        enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
        ids = list(enc["input_ids"])[:max_seq_len]
        offsets = list(enc["offset_mapping"])[:max_seq_len]
        labels = [
            tok if any(lo <= start < hi for lo, hi in spans) else IGNORE
            for tok, (start, _end) in zip(ids, offsets, strict=True)
        ]
        example = Example(tuple(ids), tuple(labels))
        if example.trained_tokens:
            out.append(example)
    return out


def split(examples: Sequence[Example], share: float, seed: int) -> tuple[list[Example], list[Example]]:
    """Hold out ``share`` of the examples for validation (none below 10 examples)."""
    items = list(examples)
    if share <= 0 or len(items) < 10:
        return items, []
    random.Random(seed).shuffle(items)
    n = max(1, round(len(items) * share))
    return items[n:], items[:n]
