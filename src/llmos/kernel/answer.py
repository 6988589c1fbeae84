"""A submitted request's answer: its generation, read back through the request's plan.

:class:`Answer` is what :meth:`llmos.kernel.Kernel.submit` returns. Iterating it yields
:class:`~llmos.kernel.types.ChoiceDelta` values: for a plain request they are the generation's
own deltas, untouched (the streamed token path allocates nothing more per token); for a
tool-calling one each delta also carries its ``pieces`` (content and tool-call deltas), a choice
ends (``stop``) once it repeats a call or makes the calls allowed, and its finish reason reads
``tool_calls`` when it called tools. :meth:`Answer.collect` runs to the end and returns every
choice read back (content or tool calls). Either way the caller closes it (``async with`` or
:meth:`Answer.aclose`), which cancels what the engine still generates and releases the model.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from llmos.engine.base import TokenLogprob
from llmos.kernel.generation import Generation
from llmos.kernel.types import (
    AnswerChoice,
    AnswerResult,
    ChoiceDelta,
    ChoiceResult,
    Citation,
    GenerationResult,
    Usage,
)
from llmos.structured import ChatPlan
from llmos.types import FinishReason


class Answer:
    """One request's answer, as it is generated. Use ``async with`` or call :meth:`aclose`."""

    def __init__(
        self,
        generation: Generation,
        *,
        plan: ChatPlan | None = None,
        citations: tuple[Citation, ...] | None = None,
        retrieval_tokens: int = 0,
        digest: str = "",
    ) -> None:
        self._generation = generation
        self._plan = plan if plan is not None and plan.uses_tools else None
        self._read_plan = plan
        self.citations = citations
        """What retrieval put into the prompt; None when the request named no collections."""
        self.retrieval_tokens = retrieval_tokens
        """Tokens spent embedding the retrieval query (beside :attr:`usage`'s)."""
        self.digest = digest
        """The digest of the model version that answers."""

    @property
    def request_id(self) -> str:
        return self._generation.request_id

    @property
    def model(self) -> str:
        return self._generation.model

    @property
    def created(self) -> int:
        return self._generation.created

    @property
    def n_choices(self) -> int:
        return self._generation.n_choices

    @property
    def queue_position(self) -> int | None:
        return self._generation.queue_position

    @property
    def estimated_start(self) -> float | None:
        return self._generation.estimated_start

    @property
    def usage(self) -> Usage:
        return self._generation.usage

    @property
    def error(self) -> BaseException | None:
        return self._generation.error

    async def __aenter__(self) -> Answer:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Cancel unfinished choices and release the model. Idempotent."""
        await self._generation.aclose()

    def __aiter__(self) -> AsyncIterator[ChoiceDelta]:
        if self._plan is None:
            return aiter(self._generation)
        return self._tool_stream(self._plan)

    async def _tool_stream(self, plan: ChatPlan) -> AsyncIterator[ChoiceDelta]:
        n = self.n_choices
        parsers = {index: plan.stream() for index in range(n)}
        ended: set[int] = set()
        async for delta in self._generation:
            parser = parsers.get(delta.index)
            if delta.index in ended or parser is None:
                continue
            pieces = parser.feed(delta.text) if delta.text else []
            finish = delta.finish_reason
            if parser.done:  # a repeated call, or the calls allowed made: this choice is over
                finish = "stop"
            if finish is not None:
                pieces = [*pieces, *parser.finish()]
                if parser.is_tool_answer and finish == "stop":
                    finish = "tool_calls"
            if pieces or finish is not None:
                yield ChoiceDelta(delta.index, delta.text, delta.logprobs, finish, tuple(pieces))
            if finish is not None:
                ended.add(delta.index)
                if len(ended) == n:
                    break  # closing the answer cancels what the engine still generates

    async def collect(self) -> AnswerResult:
        """Run to the end; every choice's text read back as content or tool calls."""
        if self._plan is None:
            result = await self._generation.collect()
        else:
            result = await self._collect_calls(self._plan)
        return AnswerResult(tuple(self._read(c) for c in result.choices), result.usage, self.citations)

    def _read(self, choice: ChoiceResult) -> AnswerChoice:
        plan = self._read_plan
        if plan is None:
            return AnswerChoice(
                choice.index, choice.text, choice.text, (), choice.finish_reason, choice.logprobs
            )
        parsed = plan.parse(choice.text)
        return AnswerChoice(
            choice.index,
            choice.text,
            parsed.content,
            parsed.tool_calls,
            plan.finish_reason(parsed, choice.finish_reason),
            choice.logprobs,
        )

    async def _collect_calls(self, plan: ChatPlan) -> GenerationResult:
        """Like ``Generation.collect``, but a tool-calling choice ends (as a ``stop``) once it
        repeats a call or makes the calls allowed, and generation stops when every choice has."""
        n = self.n_choices
        watchers = {i: plan.watcher() for i in range(n)}
        texts = {i: "" for i in range(n)}
        logprobs: dict[int, list[TokenLogprob]] = {i: [] for i in range(n)}
        reasons: dict[int, FinishReason] = {}
        async for delta in self._generation:
            if delta.index in reasons:
                continue
            texts[delta.index] += delta.text
            logprobs[delta.index].extend(delta.logprobs)
            watcher = watchers[delta.index]
            if watcher is not None and watcher.feed(delta.text):
                reasons[delta.index] = "stop"
            elif delta.finish_reason is not None:
                reasons[delta.index] = delta.finish_reason
            if len(reasons) == n:
                break
        choices = tuple(
            ChoiceResult(i, texts[i], reasons.get(i, "stop"), tuple(logprobs[i])) for i in range(n)
        )
        return GenerationResult(choices=choices, usage=self.usage)
