"""``POST /v1/chat/completions``: parse HTTP, admit, have the kernel answer, write HTTP."""

from __future__ import annotations

from collections.abc import AsyncIterator

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse

from llmos.kernel.answer import Answer
from llmos.server import convert
from llmos.server.auth import PrincipalDep
from llmos.server.bounds import check_count
from llmos.server.chunks import ChatChunks
from llmos.server.meta import request_meta
from llmos.server.metering import CLIENT_CLOSED, admit, meter, metered
from llmos.server.routes.deps import KernelDep, server_state
from llmos.server.schemas.chat import (
    ChatChoice,
    ChatCompletion,
    ChatCompletionChunk,
    ChatCompletionRequest,
    ChunkChoice,
    Delta,
)
from llmos.server.schemas.common import ErrorResponse
from llmos.server.sse import sse_event

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
    wanted = convert.chat_request(body, caller, meta, max_tokens=requested or grant.max_tokens)
    answer = await kernel.submit(wanted)
    meter(request).follow(answer)
    headers = {**convert.generation_headers(answer), **lowered}
    life = server_state(request).lifecycle
    chat_id = f"chatcmpl-{meta.request_id}"
    if body.stream:
        include_usage = body.stream_options is not None and body.stream_options.include_usage
        events = _chunks(answer, chat_id, body.model, include_usage)
        return convert.sse_response(events, answer, headers=headers, life=life, on_error=meter(request).fail)
    result = await convert.collected(request, answer, life)
    if result is None:
        return Response(status_code=CLIENT_CLOSED)
    with_logprobs = wanted.sampling.logprobs is not None
    choices = [
        ChatChoice(
            index=c.index,
            message=convert.assistant_message(c),
            logprobs=convert.chat_choice_logprobs(c.logprobs) if with_logprobs else None,
            finish_reason=c.finish_reason,
        )
        for c in result.choices
    ]
    completion = ChatCompletion(
        id=chat_id,
        created=answer.created,
        model=body.model,
        choices=choices,
        usage=convert.usage(result.usage),
    )
    payload = convert.with_citations(completion.model_dump(mode="json"), result.citations)
    return JSONResponse(payload, headers=headers)


async def _chunks(answer: Answer, chat_id: str, model: str, include_usage: bool) -> AsyncIterator[bytes]:
    def chunk(choices: list[ChunkChoice], finishing: bool = False) -> bytes:
        c = ChatCompletionChunk(id=chat_id, created=answer.created, model=model, choices=choices)
        payload = c.model_dump(mode="json")
        if not include_usage:
            del payload["usage"]
        if finishing:
            convert.with_citations(payload, answer.citations)
        else:
            del payload["citations"]
        return sse_event(payload)

    fast = ChatChunks(chat_id, answer.created, model, include_usage=include_usage)
    for index in range(answer.n_choices):
        yield chunk([ChunkChoice(index=index, delta=Delta(role="assistant", content=""))])
    async for delta in answer:
        if delta.pieces is not None:  # a tool-calling choice: what its text reads as
            for piece in delta.pieces:
                yield chunk([ChunkChoice(index=delta.index, delta=convert.piece_delta(piece))])
        elif not delta.logprobs:
            if delta.text:
                yield fast.content(delta.index, delta.text)  # the common event, per token
        else:
            logprobs = convert.chat_choice_logprobs(delta.logprobs)
            yield chunk([ChunkChoice(index=delta.index, delta=Delta(content=delta.text), logprobs=logprobs)])
        if delta.finish_reason is not None:
            finish = ChunkChoice(index=delta.index, delta=Delta(), finish_reason=delta.finish_reason)
            yield chunk([finish], finishing=True)
    if include_usage:
        final = ChatCompletionChunk(
            id=chat_id, created=answer.created, model=model, choices=[], usage=convert.usage(answer.usage)
        )
        yield sse_event(convert.with_citations(final.model_dump(mode="json"), answer.citations))
