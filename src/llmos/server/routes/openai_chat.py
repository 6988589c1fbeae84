"""``POST /v1/chat/completions``."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse

from llmos.engine.base import TokenLogprob
from llmos.kernel.generation import Generation
from llmos.kernel.types import ChoiceResult, GenerationResult
from llmos.server import convert
from llmos.server.auth import PrincipalDep
from llmos.server.bounds import check_count
from llmos.server.chunks import ChatChunks
from llmos.server.meta import request_meta
from llmos.server.metering import admit, digest_of, meter, metered
from llmos.server.rag import Retrieval, retrieve
from llmos.server.routes.deps import KernelDep, server_state
from llmos.server.schemas.chat import (
    AssistantMessage,
    ChatChoice,
    ChatCompletion,
    ChatCompletionChunk,
    ChatCompletionRequest,
    ChunkChoice,
    Delta,
)
from llmos.server.schemas.common import ErrorResponse
from llmos.server.sse import sse_event
from llmos.server.streaming import CleanupStreamingResponse, ClientDisconnected, unless_disconnected
from llmos.structured import ChatPlan, ParsedAnswer, plan_chat
from llmos.types import FinishReason

router = APIRouter(tags=["openai"])


@router.post(
    "/v1/chat/completions",
    response_model=ChatCompletion,
    responses={400: {"model": ErrorResponse}, 404: {"model": ErrorResponse}},
    dependencies=[metered("chat")],
)
async def create_chat_completion(
    body: ChatCompletionRequest, request: Request, kernel: KernelDep, principal: PrincipalDep
) -> Response:
    check_count("messages", len(body.messages), kernel.config.limits.max_messages)
    requested = body.max_completion_tokens or body.max_tokens
    grant = await admit(
        request, principal, scope="inference", model=body.model, max_tokens=requested, user=body.user
    )
    caller = meter(request).principal or principal
    meta, lowered = request_meta(request, body, caller, grant.urgency_ceiling)
    rag = await retrieve(kernel, caller, body, [m.to_domain() for m in body.messages], meter(request).charge)
    # Planning compiles every tool's schema into a grammar: CPU work sized by the client, so
    # it runs off the event loop (no request may stall the others, or /health).
    plan = await asyncio.to_thread(
        plan_chat,
        rag.messages,
        response_format=body.response_format,
        tools=body.tools,
        tool_choice=body.tool_choice,
        parallel_tool_calls=body.parallel_tool_calls,
    )
    params = convert.generation_params(
        body,
        logprobs=convert.chat_logprobs(body.logprobs, body.top_logprobs),
        max_tokens=requested or grant.max_tokens,
        grammar=plan.grammar,
    )
    gen = await kernel.chat(body.model, plan.messages, params, meta)
    meter(request).follow(gen)
    meter(request).report(digest=digest_of(kernel, body.model))
    headers = {**convert.generation_headers(gen), **lowered}
    life = server_state(request).lifecycle
    chat_id = f"chatcmpl-{meta.request_id}"
    if body.stream:
        include_usage = body.stream_options is not None and body.stream_options.include_usage
        events = convert.sse_with_errors(
            _chunks(gen, plan, chat_id, body.model, include_usage, rag), on_error=meter(request).fail
        )
        return CleanupStreamingResponse(
            events,
            on_close=gen.aclose,
            media_type="text/event-stream",
            headers=headers,
            cut=convert.cut_when_drained(life, meter(request).fail),
        )
    try:
        result = await unless_disconnected(request, _collect(gen, plan), life=life)
    except ClientDisconnected:
        return Response(status_code=499)
    finally:
        await gen.aclose()
    choices = []
    for c in result.choices:
        answer = plan.parse(c.text)
        choices.append(
            ChatChoice(
                index=c.index,
                message=_message(answer),
                logprobs=convert.chat_choice_logprobs(c.logprobs) if params.logprobs is not None else None,
                finish_reason=plan.finish_reason(answer, c.finish_reason) if c.finish_reason else None,
            )
        )
    completion = ChatCompletion(
        id=chat_id, created=gen.created, model=body.model, choices=choices, usage=convert.usage(result.usage)
    )
    return JSONResponse(rag.add_to(completion.model_dump(mode="json")), headers=headers)


async def _collect(gen: Generation, plan: ChatPlan) -> GenerationResult:
    """Every choice's whole text, like ``gen.collect()``; but a tool-calling choice ends (as a
    ``stop``) once it repeats a call or makes the calls allowed, and generation stops when every
    choice has ended."""
    if not plan.uses_tools:
        return await gen.collect()
    watchers = {i: plan.watcher() for i in range(gen.n_choices)}
    texts = {i: "" for i in range(gen.n_choices)}
    logprobs: dict[int, list[TokenLogprob]] = {i: [] for i in range(gen.n_choices)}
    reasons: dict[int, FinishReason] = {}
    async for delta in gen:
        if delta.index in reasons:
            continue
        texts[delta.index] += delta.text
        logprobs[delta.index].extend(delta.logprobs)
        watcher = watchers[delta.index]
        if watcher is not None and watcher.feed(delta.text):
            reasons[delta.index] = "stop"
        elif delta.finish_reason is not None:
            reasons[delta.index] = delta.finish_reason
        if len(reasons) == gen.n_choices:
            break
    choices = tuple(
        ChoiceResult(i, texts[i], reasons.get(i, "stop"), tuple(logprobs[i])) for i in range(gen.n_choices)
    )
    return GenerationResult(choices=choices, usage=gen.usage)


def _message(answer: ParsedAnswer) -> AssistantMessage:
    calls = [c.to_openai() for c in answer.tool_calls] or None
    return AssistantMessage(content=answer.content, tool_calls=calls)


async def _chunks(
    gen: Generation, plan: ChatPlan, chat_id: str, model: str, include_usage: bool, rag: Retrieval
) -> AsyncIterator[bytes]:
    def chunk(choices: list[ChunkChoice], finishing: bool = False) -> bytes:
        c = ChatCompletionChunk(id=chat_id, created=gen.created, model=model, choices=choices)
        payload = c.model_dump(mode="json")
        if not include_usage:
            del payload["usage"]
        if finishing:
            rag.add_to(payload)
        else:
            del payload["citations"]
        return sse_event(payload)

    fast = ChatChunks(chat_id, gen.created, model, include_usage=include_usage)
    parsers = {index: plan.stream() for index in range(gen.n_choices)}
    ended: set[int] = set()
    for index in range(gen.n_choices):
        yield chunk([ChunkChoice(index=index, delta=Delta(role="assistant", content=""))])
    async for delta in gen:
        if delta.index in ended:
            continue
        parser = parsers.get(delta.index)
        finish: str | None = delta.finish_reason
        if parser is None and not delta.logprobs:
            if delta.text:
                yield fast.content(delta.index, delta.text)  # the common event, per token
        elif parser is None:
            logprobs = convert.chat_choice_logprobs(delta.logprobs)
            yield chunk([ChunkChoice(index=delta.index, delta=Delta(content=delta.text), logprobs=logprobs)])
        else:
            pieces = parser.feed(delta.text) if delta.text else []
            if parser.done:  # a repeated call, or the calls allowed made: this choice is over
                finish = "stop"
            if finish is not None:
                pieces = [*pieces, *parser.finish()]
            for piece in pieces:
                yield chunk([ChunkChoice(index=delta.index, delta=Delta(**piece.to_openai()))])
        if finish is not None:
            if parser is not None and parser.is_tool_answer and finish == "stop":
                finish = "tool_calls"
            yield chunk([ChunkChoice(index=delta.index, delta=Delta(), finish_reason=finish)], finishing=True)
            ended.add(delta.index)
            if len(ended) == gen.n_choices:
                break  # closing the stream cancels what the engine still generates
    if include_usage:
        final = ChatCompletionChunk(
            id=chat_id, created=gen.created, model=model, choices=[], usage=convert.usage(gen.usage)
        )
        yield sse_event(rag.add_to(final.model_dump(mode="json")))
