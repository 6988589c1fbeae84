"""``POST /v1/chat/completions``."""

from __future__ import annotations

from collections.abc import AsyncIterator

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse

from llmos.kernel.generation import Generation
from llmos.server import convert
from llmos.server.meta import request_meta
from llmos.server.routes.deps import KernelDep
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

router = APIRouter(tags=["openai"])


@router.post(
    "/v1/chat/completions",
    response_model=ChatCompletion,
    responses={400: {"model": ErrorResponse}, 404: {"model": ErrorResponse}},
)
async def create_chat_completion(
    body: ChatCompletionRequest, request: Request, kernel: KernelDep
) -> Response:
    meta = request_meta(request, body, kernel.config.anonymous_tenant)
    params = convert.generation_params(
        body,
        logprobs=convert.chat_logprobs(body.logprobs, body.top_logprobs),
        max_tokens=body.max_completion_tokens or body.max_tokens,
    )
    messages = [m.to_domain() for m in body.messages]
    gen = await kernel.chat(body.model, messages, params, meta)
    headers = convert.generation_headers(gen)
    chat_id = f"chatcmpl-{meta.request_id}"
    if body.stream:
        include_usage = body.stream_options is not None and body.stream_options.include_usage
        events = convert.sse_with_errors(_chunks(gen, chat_id, body.model, include_usage))
        return CleanupStreamingResponse(
            events, on_close=gen.aclose, media_type="text/event-stream", headers=headers
        )
    try:
        result = await unless_disconnected(request, gen.collect())
    except ClientDisconnected:
        return Response(status_code=499)
    finally:
        await gen.aclose()
    completion = ChatCompletion(
        id=chat_id,
        created=gen.created,
        model=body.model,
        choices=[
            ChatChoice(
                index=c.index,
                message=AssistantMessage(content=c.text),
                logprobs=convert.chat_choice_logprobs(c.logprobs) if params.logprobs is not None else None,
                finish_reason=c.finish_reason,
            )
            for c in result.choices
        ],
        usage=convert.usage(result.usage),
    )
    return JSONResponse(completion.model_dump(mode="json"), headers=headers)


async def _chunks(gen: Generation, chat_id: str, model: str, include_usage: bool) -> AsyncIterator[bytes]:
    def chunk(choices: list[ChunkChoice]) -> bytes:
        c = ChatCompletionChunk(id=chat_id, created=gen.created, model=model, choices=choices)
        payload = c.model_dump(mode="json")
        if not include_usage:
            del payload["usage"]
        return sse_event(payload)

    for index in range(gen.n_choices):
        yield chunk([ChunkChoice(index=index, delta=Delta(role="assistant", content=""))])
    async for delta in gen:
        logprobs = convert.chat_choice_logprobs(delta.logprobs) if delta.logprobs else None
        if delta.text or logprobs is not None:
            yield chunk([ChunkChoice(index=delta.index, delta=Delta(content=delta.text), logprobs=logprobs)])
        if delta.finish_reason is not None:
            yield chunk([ChunkChoice(index=delta.index, delta=Delta(), finish_reason=delta.finish_reason)])
    if include_usage:
        final = ChatCompletionChunk(
            id=chat_id, created=gen.created, model=model, choices=[], usage=convert.usage(gen.usage)
        )
        yield sse_event(final.model_dump(mode="json"))
