"""A running request: its sequences (``n`` choices, or several prompts) merged into one stream.

Iterating a :class:`Generation` yields :class:`ChoiceDelta` values as the engine core produces
them: it reads every sequence's stream directly, waking once per core step (the streams share one
:class:`~llmos.core.stream.Signal`), with no task or queue per sequence.
:meth:`Generation.aclose` cancels every unfinished sequence (freeing its engine slot at the next
step) and releases the model. Closing is idempotent and always safe to call.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass

from llmos.core.stream import Signal
from llmos.engine.base import SeqOutput, TokenLogprob
from llmos.errors import DeadlineExceeded, EngineGenerateError, LLMOSError
from llmos.kernel.ports import GenerationHandle
from llmos.kernel.types import ChoiceDelta, ChoiceResult, GenerationResult, Usage
from llmos.observability.metrics import RequestObservation, status_of
from llmos.types import FinishReason

log = logging.getLogger(__name__)


@dataclass
class _Choice:
    index: int
    handle: GenerationHandle
    prompt_group: int
    text: str = ""
    completion_tokens: int = 0
    cached_tokens: int = 0
    finish_reason: FinishReason | None = None


class Generation:
    """One request's sequences, merged. Use ``async with`` or call :meth:`aclose`."""

    def __init__(
        self,
        *,
        request_id: str,
        model: str,
        created: int,
        handles: Sequence[tuple[GenerationHandle, int]],
        prompt_tokens: Sequence[int],
        on_close: Callable[[], Awaitable[None]],
        observer: RequestObservation | None = None,
    ) -> None:
        """``handles``: each sequence's handle with the index of its prompt in ``prompt_tokens``;
        ``observer`` (metrics) hears of every output and of the end."""
        self.request_id = request_id
        self.model = model
        self.created = created
        self._choices = [_Choice(i, h, g) for i, (h, g) in enumerate(handles)]
        self._prompt_tokens = list(prompt_tokens)
        self._on_close = on_close
        self._observer = observer
        self._signal = Signal()
        for c in self._choices:
            c.handle.attach(self._signal)
        self._close_task: asyncio.Future[None] | None = None
        self.error: BaseException | None = None
        """The error that ended the generation, if one did (the kernel reacts to a dead engine)."""
        self._started = False

    @property
    def n_choices(self) -> int:
        return len(self._choices)

    @property
    def queue_position(self) -> int | None:
        """The best place in the queue among the unfinished sequences (0: one is running)."""
        known: list[int] = []
        for c in self._choices:
            position, start = c.handle.queue_position, c.handle.estimated_start
            if position is not None:
                known.append(position)
            elif start == 0.0:
                known.append(0)
        return min(known) if known else None

    @property
    def estimated_start(self) -> float | None:
        """Seconds from now until every sequence is expected to hold a slot, when known."""
        known = [t for c in self._choices if (t := c.handle.estimated_start) is not None]
        return max(known) if known else None

    @property
    def usage(self) -> Usage:
        return Usage(
            prompt_tokens=sum(self._prompt_tokens),
            completion_tokens=sum(c.completion_tokens for c in self._choices),
            cached_tokens=max((c.cached_tokens for c in self._choices), default=0),
        )

    @property
    def finished(self) -> bool:
        return all(c.finish_reason is not None for c in self._choices)

    async def __aenter__(self) -> Generation:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def __aiter__(self) -> AsyncIterator[ChoiceDelta]:
        return self._stream()

    async def _stream(self) -> AsyncIterator[ChoiceDelta]:
        if self._started:
            raise RuntimeError("a Generation can be iterated only once")
        self._started = True
        open_choices = list(self._choices)
        try:
            while open_choices:
                took = False
                for choice in open_choices:
                    for item in choice.handle.take():
                        took = True
                        if isinstance(item, BaseException):
                            self.error = item
                            raise item
                        try:
                            delta = self._absorb(choice, item)
                        except LLMOSError as exc:
                            self.error = exc
                            raise
                        if delta is not None:
                            yield delta
                open_choices = [c for c in open_choices if c.finish_reason is None]
                if open_choices and not took:
                    await self._signal.wait()
        finally:
            await self.aclose()

    def _absorb(self, choice: _Choice, out: SeqOutput) -> ChoiceDelta | None:
        before = choice.completion_tokens
        choice.text += out.text
        if out.completion_tokens:
            choice.completion_tokens = max(choice.completion_tokens, out.completion_tokens)
        else:
            choice.completion_tokens += len(out.token_ids)
        choice.cached_tokens = max(choice.cached_tokens, out.cached_tokens)
        if self._observer is not None and (out.text or choice.completion_tokens > before):
            self._observer.output(choice.completion_tokens - before)
        reason = out.finish_reason
        if reason == "error":
            raise EngineGenerateError(out.error or "generation failed in the engine")
        if reason == "timeout":
            raise DeadlineExceeded(out.error or "the request's deadline passed before it finished")
        if reason == "abort":
            raise EngineGenerateError(out.error or "generation aborted: the server is shutting down")
        if reason is not None:
            choice.finish_reason = reason
        if not out.text and not out.logprobs and reason is None:
            return None
        return ChoiceDelta(index=choice.index, text=out.text, logprobs=out.logprobs, finish_reason=reason)

    async def collect(self) -> GenerationResult:
        """Run to the end and return every choice's whole text (and logprobs)."""
        logprobs: dict[int, list[TokenLogprob]] = {c.index: [] for c in self._choices}
        async for delta in self:
            logprobs[delta.index].extend(delta.logprobs)
        choices = tuple(
            ChoiceResult(c.index, c.text, c.finish_reason or "stop", tuple(logprobs[c.index]))
            for c in self._choices
        )
        return GenerationResult(choices=choices, usage=self.usage)

    async def aclose(self) -> None:
        """Cancel unfinished sequences and release the model. Idempotent.

        The work runs in its own task, so a caller that is itself being cancelled (a client
        that went away) still gets every sequence cancelled and the model released.
        """
        if self._close_task is None:
            self._close_task = asyncio.ensure_future(self._close())
        await asyncio.shield(self._close_task)

    async def _close(self) -> None:
        for choice in self._choices:
            if choice.finish_reason is None:
                choice.handle.cancel_now()
        if self._observer is not None:
            usage = self.usage
            self._observer.finish(
                status_of(self.error) if self.error else "ok" if self.finished else "cancelled",
                prompt_tokens=usage.prompt_tokens,
                completion_tokens=usage.completion_tokens,
                longest_choice_tokens=max((c.completion_tokens for c in self._choices), default=0),
            )
        await self._on_close()
