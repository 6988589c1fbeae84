"""HTTP bodies → the kernel's typed request, and the kernel's values → HTTP shapes, shared by
the OpenAI routes."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import asdict
from typing import Any

from starlette.requests import Request

from llmos.engine.base import TokenLogprob
from llmos.errors import InvalidRequest, LLMOSError, Overloaded
from llmos.kernel.answer import Answer
from llmos.kernel.inference_request import DEFAULT_TOP_K, InferenceRequest, OutputSpec, RetrievalSpec
from llmos.kernel.types import AnswerChoice, AnswerResult, Citation, GenerationParams, RequestMeta
from llmos.kernel.types import Usage as DomainUsage
from llmos.security.principal import Principal
from llmos.server.errors import domain_error_body
from llmos.server.lifecycle import Lifecycle
from llmos.server.schemas.chat import (
    AssistantMessage,
    ChatCompletionRequest,
    ChoiceLogprobs,
    ContentLogprob,
    Delta,
    TopLogprob,
)
from llmos.server.schemas.chat import Citation as CitationOut
from llmos.server.schemas.common import PromptTokensDetails, SamplingFields, Usage
from llmos.server.schemas.completions import CompletionLogprobs
from llmos.server.sse import DONE, sse_event
from llmos.server.streaming import (
    SHUTDOWN_RETRY_S,
    SHUTTING_DOWN,
    CleanupStreamingResponse,
    ClientDisconnected,
    Cut,
    unless_disconnected,
)
from llmos.structured.tool_parser import ContentDelta, StreamDelta, ToolCall

QUEUE_POSITION_HEADER = "x-llmos-queue-position"
ESTIMATED_START_HEADER = "x-llmos-estimated-start-ms"


def generation_params(
    body: SamplingFields, *, logprobs: int | None, max_tokens: int | None, grammar: str | None = None
) -> GenerationParams:
    stop: tuple[str, ...] = ()
    if isinstance(body.stop, str):
        stop = (body.stop,)
    elif body.stop:
        stop = tuple(body.stop)
    return GenerationParams(
        max_tokens=max_tokens,
        temperature=body.temperature,
        top_p=body.top_p,
        presence_penalty=body.presence_penalty,
        frequency_penalty=body.frequency_penalty,
        seed=body.seed,
        stop=stop,
        logprobs=logprobs,
        n=body.n,
        grammar=grammar,
        ignore_eos=body.ignore_eos,
        logit_bias=body.logit_bias_pairs(),
    )


def chat_request(
    body: ChatCompletionRequest, caller: Principal, meta: RequestMeta, *, max_tokens: int | None
) -> InferenceRequest:
    """The kernel's request for a ``/v1/chat/completions`` body, made by ``caller``."""
    retrieval = None
    if body.collections is not None:
        options = body.retrieval
        retrieval = RetrievalSpec(
            tuple(body.collections),
            top_k=options.top_k if options is not None else DEFAULT_TOP_K,
            mode=options.mode if options is not None else "hybrid",
            filters=options.filters if options is not None else None,
        )
    return InferenceRequest(
        body.model,
        meta,
        messages=tuple(m.to_domain() for m in body.messages),
        sampling=generation_params(
            body, logprobs=chat_logprobs(body.logprobs, body.top_logprobs), max_tokens=max_tokens
        ),
        output=OutputSpec(body.response_format, body.tools, body.tool_choice, body.parallel_tool_calls),
        retrieval=retrieval,
        principal=caller,
    )


def with_citations(payload: dict[str, Any], citations: tuple[Citation, ...] | None) -> dict[str, Any]:
    """``payload`` with ``citations`` set, or without the key when the request named no collections."""
    if citations is None:
        payload.pop("citations", None)
    else:
        payload["citations"] = [CitationOut(**asdict(c)).model_dump(mode="json") for c in citations]
    return payload


def _tool_call(call: ToolCall) -> dict[str, Any]:
    return {"id": call.id, "type": "function", "function": {"name": call.name, "arguments": call.arguments}}


def assistant_message(choice: AnswerChoice) -> AssistantMessage:
    """The message of a chat completion choice: content, or tool calls (content None)."""
    return AssistantMessage(
        content=choice.content, tool_calls=[_tool_call(c) for c in choice.tool_calls] or None
    )


def piece_delta(piece: StreamDelta) -> Delta:
    """A streamed chat delta for one piece of a tool-calling choice's answer; a call's ``id``
    and ``name`` come on its first delta only."""
    if isinstance(piece, ContentDelta):
        return Delta(content=piece.text)
    function: dict[str, Any] = {"arguments": piece.arguments}
    entry: dict[str, Any] = {"index": piece.index}
    if piece.id is not None:
        entry["id"] = piece.id
        entry["type"] = "function"
    if piece.name is not None:
        function = {"name": piece.name, "arguments": piece.arguments}
    entry["function"] = function
    return Delta(tool_calls=[entry])


def chat_logprobs(enabled: bool, top: int | None) -> int | None:
    """OpenAI's chat ``logprobs``/``top_logprobs`` → the engine's count of alternatives."""
    if top is not None and not enabled:
        raise InvalidRequest("top_logprobs requires logprobs to be true", param="top_logprobs")
    return (top or 0) if enabled else None


def usage(u: DomainUsage) -> Usage:
    return Usage(
        prompt_tokens=u.prompt_tokens,
        completion_tokens=u.completion_tokens,
        total_tokens=u.total_tokens,
        prompt_tokens_details=PromptTokensDetails(cached_tokens=u.cached_tokens),
    )


def _bytes(token: str) -> list[int]:
    return list(token.encode("utf-8", errors="replace"))


def chat_choice_logprobs(items: Iterable[TokenLogprob]) -> ChoiceLogprobs:
    return ChoiceLogprobs(
        content=[
            ContentLogprob(
                token=lp.token,
                logprob=lp.logprob,
                bytes=_bytes(lp.token),
                top_logprobs=[TopLogprob(token=t, logprob=v, bytes=_bytes(t)) for t, v in lp.top],
            )
            for lp in items
        ]
    )


def completion_logprobs(items: Iterable[TokenLogprob], start_offset: int = 0) -> CompletionLogprobs:
    tokens: list[str] = []
    values: list[float] = []
    tops: list[dict[str, float]] = []
    offsets: list[int] = []
    offset = start_offset
    for lp in items:
        tokens.append(lp.token)
        values.append(lp.logprob)
        tops.append({t: v for t, v in lp.top})
        offsets.append(offset)
        offset += len(lp.token)
    return CompletionLogprobs(tokens=tokens, token_logprobs=values, top_logprobs=tops, text_offset=offsets)


def generation_headers(answer: Answer) -> dict[str, str]:
    """Queue position (0: running) and the estimated start, in ms from now, when known."""
    headers: dict[str, str] = {}
    position = answer.queue_position
    if position is not None:
        headers[QUEUE_POSITION_HEADER] = str(position)
    start = answer.estimated_start
    if start is not None:
        headers[ESTIMATED_START_HEADER] = str(max(0, int(start * 1000)))
    return headers


OnError = Callable[[LLMOSError], None]


async def sse_with_errors(
    events: AsyncIterator[bytes], *, on_error: OnError | None = None
) -> AsyncIterator[bytes]:
    """Frame a stream's end: ``[DONE]`` after success; an error event, then ``[DONE]``, if it
    fails midway (``on_error`` hears of the error: the usage row books its status)."""
    try:
        async for chunk in events:
            yield chunk
    except LLMOSError as exc:
        if on_error is not None:
            on_error(exc)
        yield sse_event(domain_error_body(exc))
    yield DONE


def sse_response(
    events: AsyncIterator[bytes],
    answer: Answer,
    *,
    headers: dict[str, str],
    life: Lifecycle,
    on_error: OnError,
) -> CleanupStreamingResponse:
    """The streamed response of ``answer``: ``events`` framed by :func:`sse_with_errors`, cut
    when a drain ends the running requests, and the answer closed however the stream ends."""
    return CleanupStreamingResponse(
        sse_with_errors(events, on_error=on_error),
        on_close=answer.aclose,
        media_type="text/event-stream",
        headers=headers,
        cut=cut_when_drained(life, on_error),
    )


async def collected(request: Request, answer: Answer, life: Lifecycle) -> AnswerResult | None:
    """``answer`` run to its end and closed; None if the client went away first (reply 499)."""
    try:
        return await unless_disconnected(request, answer.collect(), life=life)
    except ClientDisconnected:
        return None
    finally:
        await answer.aclose()


def cut_when_drained(life: Lifecycle, on_error: OnError) -> Cut:
    """The ``cut`` of an SSE stream: when a drain cuts the running requests, the stream ends
    with a 503 error event and ``[DONE]``, and ``on_error`` books the 503."""

    async def cut() -> bytes:
        await life.until_cut()
        exc = Overloaded(SHUTTING_DOWN, retry_after=SHUTDOWN_RETRY_S)
        on_error(exc)
        return sse_event(domain_error_body(exc)) + DONE

    return cut
