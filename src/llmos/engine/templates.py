"""Chat templates from model files, rendered in a sandbox.

A GGUF's ``tokenizer.chat_template`` is untrusted input: it renders in Jinja's
``ImmutableSandboxedEnvironment`` with only the helpers Hugging Face templates use
(``raise_exception``, ``strftime_now``, ``tojson``, ``namespace``, ``range``...). A template that
reaches for Python internals raises :class:`~llmos.errors.InvalidModelFile`; one that calls
``raise_exception`` (a message the template rejects) raises :class:`~llmos.errors.InvalidRequest`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, NoReturn

from jinja2 import TemplateError, TemplateSyntaxError
from jinja2.exceptions import SecurityError
from jinja2.sandbox import ImmutableSandboxedEnvironment

from llmos.engine.chat_formats import CHATML_TEMPLATE
from llmos.errors import InvalidModelFile, InvalidRequest
from llmos.types import ChatMessage


class _TemplateRaised(Exception):
    pass


def _raise_exception(message: str) -> NoReturn:
    raise _TemplateRaised(str(message))


def _strftime_now(fmt: str) -> str:
    return datetime.now().strftime(str(fmt))


def _tojson(
    value: Any, indent: int | None = None, ensure_ascii: bool = False, sort_keys: bool = False
) -> str:
    return json.dumps(value, indent=indent, ensure_ascii=ensure_ascii, sort_keys=sort_keys)


def _environment() -> ImmutableSandboxedEnvironment:
    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, autoescape=False)
    for name in ("cycler", "joiner", "lipsum"):
        env.globals.pop(name, None)
    env.globals["raise_exception"] = _raise_exception
    env.globals["strftime_now"] = _strftime_now
    env.filters["tojson"] = _tojson
    return env


class ChatTemplate:
    """A compiled, sandboxed chat template. Raises InvalidModelFile if it does not compile."""

    def __init__(self, source: str | None, *, bos_token: str = "", eos_token: str = "") -> None:
        self.source = source if source else CHATML_TEMPLATE
        self.is_fallback = not source
        self.bos_token = bos_token
        self.eos_token = eos_token
        try:
            self._template = _environment().from_string(self.source)
        except TemplateSyntaxError as e:
            raise InvalidModelFile(f"the model's chat template does not parse: {e}") from e

    def render(
        self,
        messages: Sequence[ChatMessage],
        *,
        add_generation_prompt: bool = True,
        tools: Sequence[Mapping[str, Any]] | None = None,
    ) -> str:
        try:
            return self._template.render(
                messages=[dict(m) for m in messages],
                add_generation_prompt=add_generation_prompt,
                tools=[dict(t) for t in tools] if tools else None,
                bos_token=self.bos_token,
                eos_token=self.eos_token,
            )
        except SecurityError as e:
            raise InvalidModelFile(f"the model's chat template tried an unsafe operation: {e}") from e
        except _TemplateRaised as e:
            raise InvalidRequest(f"the chat template rejected the messages: {e}", param="messages") from e
        except TemplateError as e:
            raise InvalidModelFile(f"the model's chat template failed: {e}") from e
        except (TypeError, ValueError, AttributeError, KeyError, IndexError) as e:
            raise InvalidRequest(
                f"the chat template could not render these messages: {e}", param="messages"
            ) from e
