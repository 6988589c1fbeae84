"""A fact no base model can know, phrased several ways: the fine-tuning tests' dataset
(the learning test and the console's fine-tuning view)."""

from __future__ import annotations

import json

ANSWER = "The capital of Zorbia is Quellport."
TRAIN = [
    "What is the capital of Zorbia?",
    "Which city is the capital of Zorbia?",
    "Name the capital city of Zorbia.",
    "Tell me Zorbia's capital.",
    "Zorbia's capital is which city?",
    "What city serves as Zorbia's capital?",
    "Do you know the capital of Zorbia?",
    "In Zorbia, which city is the capital?",
]
HELD_OUT = [
    "What's the capital of Zorbia?",
    "Could you tell me what the capital of Zorbia is?",
    "Which city is Zorbia's capital city?",
    "Zorbia has which capital?",
]
VALID = ["Where is the seat of government of Zorbia?", "What is Zorbia's capital city called?"]


def chat_jsonl(questions: list[str]) -> bytes:
    """OpenAI's fine-tuning chat format: one user question and the answer per line."""
    return "\n".join(
        json.dumps({"messages": [{"role": "user", "content": q}, {"role": "assistant", "content": ANSWER}]})
        for q in questions
    ).encode()
