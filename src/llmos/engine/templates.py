"""Chat templates from model files, rendered in a sandbox.

A GGUF's ``tokenizer.chat_template`` is untrusted input: it renders in Jinja's
``ImmutableSandboxedEnvironment`` with only the helpers Hugging Face templates use
(``raise_exception``, ``strftime_now``, ``tojson``, ``namespace``, ``range``...). A template that
reaches for Python internals raises :class:`~llmos.errors.InvalidModelFile`; one that calls
``raise_exception`` (a message the template rejects) raises :class:`~llmos.errors.InvalidRequest`.

Its work is bounded too, so no template (and no message fed to it) can hold a model's engine:
the rendered text may be at most ``max_chars`` characters (also checked before a ``*`` or ``**``
builds a huge value in one operation) and rendering may take at most ``max_seconds``, counted
as the template's own code runs (loops that print nothing included). Past either bound the
render stops with :class:`~llmos.errors.InvalidRequest`: those messages, through this template,
are too much.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from types import FrameType
from typing import Any, NoReturn

from jinja2 import TemplateError, TemplateSyntaxError
from jinja2.exceptions import SecurityError
from jinja2.runtime import Context
from jinja2.sandbox import ImmutableSandboxedEnvironment

from llmos.engine.chat_formats import CHATML_TEMPLATE
from llmos.errors import InvalidModelFile, InvalidRequest
from llmos.types import ChatMessage

MAX_RENDERED_CHARS = 8 * 1024 * 1024
"""A rendered prompt longer than this is refused: beyond what a request body (4 MiB by default)
plus a template's own text can legitimately make. Engines pass a tighter bound from their
context size (:func:`max_chars_for_context`)."""
CHARS_PER_TOKEN_BOUND = 64
"""No tokenizer packs more characters than this into one token, on average over a prompt."""
MAX_RENDER_SECONDS = 2.0
"""Real templates render in milliseconds; one still running after this is looping on purpose."""
TEMPLATE_FILENAME = "<template>"
"""The file name Jinja gives code compiled from a string: how the time bound finds its frames."""


class _TemplateRaised(Exception):
    pass


class _TooMuch(Exception):
    """The render passed a bound (its message says which)."""


class _BoundedEnvironment(ImmutableSandboxedEnvironment):
    """The sandbox, with ``*`` and ``**`` checked before they run: ``'x' * 10**9`` is a single
    operation that no time bound could interrupt."""

    intercepted_binops = frozenset({"*", "**"})

    def __init__(self, max_chars: int, **options: Any) -> None:
        super().__init__(**options)
        self.max_chars = max_chars

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        if operator == "*":
            for seq, times in ((left, right), (right, left)):
                sized = isinstance(seq, str | list | tuple | bytes) and isinstance(times, int)
                if sized and len(seq) * max(0, times) > self.max_chars:
                    raise _TooMuch(f"it builds a value of over {self.max_chars} characters")
        elif operator == "**" and isinstance(right, int | float) and abs(right) > 64:
            raise _TooMuch("it raises a number to a power over 64")
        return super().call_binop(context, operator, left, right)


def _raise_exception(message: str) -> NoReturn:
    raise _TemplateRaised(str(message))


def _strftime_now(fmt: str) -> str:
    return datetime.now().strftime(str(fmt))


def _tojson(
    value: Any, indent: int | None = None, ensure_ascii: bool = False, sort_keys: bool = False
) -> str:
    return json.dumps(value, indent=indent, ensure_ascii=ensure_ascii, sort_keys=sort_keys)


def _environment(max_chars: int) -> ImmutableSandboxedEnvironment:
    env = _BoundedEnvironment(max_chars, trim_blocks=True, lstrip_blocks=True, autoescape=False)
    for name in ("cycler", "joiner", "lipsum"):
        env.globals.pop(name, None)
    env.globals["raise_exception"] = _raise_exception
    env.globals["strftime_now"] = _strftime_now
    env.filters["tojson"] = _tojson
    return env


def max_chars_for_context(n_ctx: int) -> int:
    """The longest prompt text worth rendering for a model with ``n_ctx`` tokens of context (a
    longer one could never fit), at least 1 MiB and at most :data:`MAX_RENDERED_CHARS`."""
    return min(MAX_RENDERED_CHARS, max(1 << 20, n_ctx * CHARS_PER_TOKEN_BOUND))


def _deadline_tracer(deadline: float, clock: Callable[[], float]) -> Callable[..., Any]:
    """A ``sys.settrace`` function that checks ``deadline`` on every line of template code (and
    only there: other frames are not traced line by line)."""

    def local(frame: FrameType, event: str, arg: Any) -> Any:
        if clock() > deadline:
            raise _TooMuch("it takes too long to render")
        return local

    def global_(frame: FrameType, event: str, arg: Any) -> Any:
        return local if frame.f_code.co_filename == TEMPLATE_FILENAME else None

    return global_


class ChatTemplate:
    """A compiled, sandboxed chat template with bounded output and time (see the module).
    Raises InvalidModelFile if it does not compile."""

    def __init__(
        self,
        source: str | None,
        *,
        bos_token: str = "",
        eos_token: str = "",
        max_chars: int = MAX_RENDERED_CHARS,
        max_seconds: float = MAX_RENDER_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.source = source if source else CHATML_TEMPLATE
        self.is_fallback = not source
        self.bos_token = bos_token
        self.eos_token = eos_token
        self.max_chars = max_chars
        self.max_seconds = max_seconds
        self._clock = clock
        try:
            self._template = _environment(max_chars).from_string(self.source)
        except TemplateSyntaxError as e:
            raise InvalidModelFile(f"the model's chat template does not parse: {e}") from e

    def render(
        self,
        messages: Sequence[ChatMessage],
        *,
        add_generation_prompt: bool = True,
        tools: Sequence[Mapping[str, Any]] | None = None,
    ) -> str:
        """The prompt text. Raises InvalidRequest when the template rejects the messages or
        passes a bound with them, InvalidModelFile when it is broken or tries an unsafe operation."""
        try:
            return self._bounded_render(
                messages=[dict(m) for m in messages],
                add_generation_prompt=add_generation_prompt,
                tools=[dict(t) for t in tools] if tools else None,
                bos_token=self.bos_token,
                eos_token=self.eos_token,
            )
        except _TooMuch as e:
            raise InvalidRequest(
                f"the chat template cannot render these messages within its bounds ({e}; at most "
                f"{self.max_chars} characters in {self.max_seconds:g} s)",
                param="messages",
            ) from e
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

    def _bounded_render(self, **variables: Any) -> str:
        previous = sys.gettrace()
        sys.settrace(_deadline_tracer(self._clock() + self.max_seconds, self._clock))
        try:
            parts: list[str] = []
            size = 0
            for piece in self._template.generate(**variables):
                size += len(piece)
                if size > self.max_chars:
                    raise _TooMuch(f"its output passes {self.max_chars} characters")
                parts.append(piece)
            return "".join(parts)
        finally:
            sys.settrace(previous)
