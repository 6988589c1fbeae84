"""Labels fall on the assistant turns only."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from llmos.engine.templates import ChatTemplate
from llmos.errors import InvalidRequest
from llmos.training.examples import IGNORE, build_examples, read_conversations, split

from .helpers import CHATML


class CharTokenizer:
    """One token per character (its code point), with offsets, like a fast tokenizer."""

    def __call__(self, text: str, **_: Any) -> dict[str, list[Any]]:
        return {"input_ids": [ord(c) for c in text], "offset_mapping": [(i, i + 1) for i in range(len(text))]}


def _render(messages: Any, generation: bool) -> str:
    return ChatTemplate(CHATML).render(messages, add_generation_prompt=generation)


def _labelled(example: Any) -> str:
    return "".join(chr(t) for t in example.labels if t != IGNORE)


def test_only_assistant_turns_are_labelled() -> None:
    conv = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello!"},
        {"role": "user", "content": "Capital of Zorbia?"},
        {"role": "assistant", "content": "Quellport."},
    ]
    [ex] = build_examples([conv], _render, CharTokenizer(), 4096)
    assert _labelled(ex) == "Hello!<|im_end|>\nQuellport.<|im_end|>\n"
    assert len(ex.input_ids) == len(ex.labels)


def test_truncation_drops_examples_left_without_an_answer() -> None:
    conv = [{"role": "user", "content": "x" * 100}, {"role": "assistant", "content": "y"}]
    assert build_examples([conv], _render, CharTokenizer(), 50) == []


def test_prompt_completion_lines_read_as_one_exchange(tmp_path: Path) -> None:
    p = tmp_path / "d.jsonl"
    p.write_text(json.dumps({"prompt": "2+2?", "completion": "4"}) + "\n\n")
    assert read_conversations(p) == [
        [{"role": "user", "content": "2+2?"}, {"role": "assistant", "content": "4"}]
    ]


def test_a_line_without_an_answer_is_named(tmp_path: Path) -> None:
    p = tmp_path / "d.jsonl"
    ok = json.dumps({"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}]})
    p.write_text(ok + "\n" + json.dumps({"messages": [{"role": "user", "content": "a"}]}) + "\n")
    with pytest.raises(InvalidRequest, match="line 2: no assistant"):
        read_conversations(p)


def test_split_holds_out_a_share_from_ten_examples() -> None:
    examples = build_examples(
        [[{"role": "user", "content": str(i)}, {"role": "assistant", "content": "ok"}] for i in range(20)],
        _render,
        CharTokenizer(),
        4096,
    )
    train, valid = split(examples, 0.1, seed=1)
    assert (len(train), len(valid)) == (18, 2)
    assert split(examples[:9], 0.1, seed=1) == (examples[:9], [])
