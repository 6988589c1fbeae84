"""The chat formats llmos knows by name, and how it recognises one from a model's vocabulary.

A GGUF file usually carries its chat template (``tokenizer.chat_template``); some do not (the
Gemma 3 270M file in the catalog is one). Then the catalog entry supplies the template, and for
any other file llmos *guesses*: each format below is known by the control tokens its turns are
written with, and a vocabulary that has all of a format's markers is taken to speak it. A guess
is never silent: the registry records it on the manifest (``llmos show``) and the load logs a
warning. Without any marker the guess is ChatML, the most common format of small open models.

Templates are Jinja, rendered by :class:`llmos.engine.templates.ChatTemplate` in its sandbox
(``trim_blocks`` and ``lstrip_blocks`` on). This module imports no Jinja: the registry reads it
at pull time.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + (message['content'] or '') + '<|im_end|>' + '\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)

GEMMA_TEMPLATE = (
    "{{ bos_token }}"
    "{% set ns = namespace(system='') %}"
    "{% for message in messages %}"
    "{% if message['role'] == 'system' %}"
    "{% set ns.system = ns.system + (message['content'] or '') | trim + '\\n\\n' %}"
    "{% else %}"
    "{{ '<start_of_turn>' + ('model' if message['role'] == 'assistant' else 'user') + '\\n' }}"
    "{% if message['role'] != 'assistant' %}{{ ns.system }}{% set ns.system = '' %}{% endif %}"
    "{{ (message['content'] or '') | trim }}{{ '<end_of_turn>\\n' }}"
    "{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<start_of_turn>model\\n' }}{% endif %}"
)
"""Gemma's turns: ``<start_of_turn>user`` / ``<start_of_turn>model``, each closed by
``<end_of_turn>``, after the BOS token. Gemma has no system role: system text opens the next
user turn. Tool results are user turns."""

LLAMA3_TEMPLATE = (
    "{{ bos_token }}"
    "{% for message in messages %}"
    "{{ '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n' }}"
    "{{ (message['content'] or '') | trim }}{{ '<|eot_id|>' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{% endif %}"
)
"""Llama 3's headers: ``<|start_header_id|>role<|end_header_id|>``, each turn closed by ``<|eot_id|>``."""


TRANSCRIPT_TEMPLATE = (
    "{{ bos_token }}"
    "A conversation between a user and a helpful, knowledgeable assistant. The assistant answers "
    "each message directly and correctly, in a few words or sentences.\n\n"
    "User: Hi!\nAssistant: Hello! How can I help you today?\n\n"
    "User: What is the largest planet in the solar system?\n"
    "Assistant: Jupiter is the largest planet in the solar system.\n\n"
    "User: How many days are in a week?\nAssistant: A week has seven days.\n\n"
    "{% for message in messages %}"
    "{% if message['role'] == 'system' %}{{ (message['content'] or '') | trim }}\n\n"
    "{% elif message['role'] == 'assistant' %}Assistant: {{ (message['content'] or '') | trim }}\n\n"
    "{% else %}User: {{ (message['content'] or '') | trim }}\n"
    "{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}Assistant:{% endif %}"
)
"""For *base* models (pretrained, not tuned to chat): a plain-text transcript that opens with a
few example exchanges, which a base model continues as the assistant. Use it with the stop
strings :data:`TRANSCRIPT_STOP`, or the model goes on to write the user's next line."""
TRANSCRIPT_STOP = ("\nUser:", "\nAssistant:")


@dataclass(frozen=True)
class ChatFormat:
    name: str
    template: str
    markers: tuple[str, ...]
    """Control tokens a vocabulary must have for this format to be guessed."""


CHAT_FORMATS: tuple[ChatFormat, ...] = (
    ChatFormat("chatml", CHATML_TEMPLATE, ("<|im_start|>", "<|im_end|>")),
    ChatFormat("gemma", GEMMA_TEMPLATE, ("<start_of_turn>", "<end_of_turn>")),
    ChatFormat("llama3", LLAMA3_TEMPLATE, ("<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>")),
)
CHATML = CHAT_FORMATS[0]


@dataclass(frozen=True)
class ChatFormatGuess:
    format: ChatFormat
    matched: bool
    """True when the vocabulary has the format's markers; False for the ChatML default."""

    @property
    def reason(self) -> str:
        if self.matched:
            return f"{self.format.name} (its vocabulary has {', '.join(self.format.markers)})"
        return f"{self.format.name} (no known turn markers in its vocabulary: the default)"


def guess_chat_format(has_token: Callable[[str], bool]) -> ChatFormatGuess:
    """The format whose markers the vocabulary has (``has_token(text)``: is ``text`` one token of
    it?), else ChatML."""
    for fmt in CHAT_FORMATS:
        if all(has_token(marker) for marker in fmt.markers):
            return ChatFormatGuess(fmt, matched=True)
    return ChatFormatGuess(CHATML, matched=False)
