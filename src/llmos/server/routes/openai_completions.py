"""``POST /v1/completions`` (legacy text completions): parse HTTP, admit, have the kernel
answer, write HTTP."""

from __future__ import annotations

from collections.abc import AsyncIterator

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse

from llmos.kernel.answer import Answer
from llmos.kernel.request import InferenceRequest
from llmos.server import convert
from llmos.server.auth import PrincipalDep
from llmos.server.bounds import check_count
from llmos.server.chunks import CompletionChunks
from llmos.server.meta import request_meta
from llmos.server.metering import admit, meter, metered
from llmos.server.routes.deps import KernelDep, server_state
from llmos.server.schemas.common import ErrorResponse
from llmos.server.schemas.completions import Completion, CompletionChoice, CompletionRequest
from llmos.server.sse import sse_event
from llmos.server.streaming import CleanupStreamingResponse, ClientDisconnected, unless_disconnected

router = APIRouter(tags=["openai"])


@router.post(
    "/v1/completions",
    response_model=Completion,
    responses={400: {"model": ErrorResponse}, 404: {"model": ErrorResponse}},
    dependencies=[metered("completion")],
)
async def create_completion(
    body: CompletionRequest, request: Request, kernel: KernelDep, principal: PrincipalDep
) -> Response:
    prompts = [body.prompt] if isinstance(body.prompt, str) else list(body.prompt)
    check_count("prompt", len(prompts), kernel.config.limits.max_prompts)
    grant = await admit(
        request, principal, scope="inference", model=body.model, max_tokens=body.max_tokens, user=body.user
    )
    meta, lowered = request_meta(request, body, meter(request).principal or principal, grant.urgency_ceiling)
    params = convert.generation_params(
        body, logprobs=body.logprobs, max_tokens=body.max_tokens or grant.max_tokens
    )
    gen = await kernel.submit(InferenceRequest(body.model, meta, prompts=tuple(prompts), sampling=params))
    meter(request).follow(gen)
    headers = {**convert.generation_headers(gen), **lowered}
    life = server_state(request).lifecycle
    cmpl_id = f"cmpl-{meta.request_id}"
    # Choice i answers prompt i // n (OpenAI's order).
    echo = [prompts[i // body.n] if body.echo else "" for i in range(gen.n_choices)]
    if body.stream:
        include_usage = body.stream_options is not None and body.stream_options.include_usage
        events = convert.sse_with_errors(
            _chunks(gen, cmpl_id, body.model, echo, include_usage), on_error=meter(request).fail
        )
        return CleanupStreamingResponse(
            events,
            on_close=gen.aclose,
            media_type="text/event-stream",
            headers=headers,
            cut=convert.cut_when_drained(life, meter(request).fail),
        )
    try:
        result = await unless_disconnected(request, gen.collect(), life=life)
    except ClientDisconnected:
        return Response(status_code=499)
    finally:
        await gen.aclose()
    completion = Completion(
        id=cmpl_id,
        created=gen.created,
        model=body.model,
        choices=[
            CompletionChoice(
                index=c.index,
                text=echo[c.index] + c.text,
                logprobs=(
                    convert.completion_logprobs(c.logprobs, len(echo[c.index]))
                    if params.logprobs is not None
                    else None
                ),
                finish_reason=c.finish_reason,
            )
            for c in result.choices
        ],
        usage=convert.usage(result.usage),
    )
    return JSONResponse(completion.model_dump(mode="json"), headers=headers)


async def _chunks(
    gen: Answer, cmpl_id: str, model: str, echo: list[str], include_usage: bool
) -> AsyncIterator[bytes]:
    def chunk(choice: CompletionChoice) -> bytes:
        payload = Completion(id=cmpl_id, created=gen.created, model=model, choices=[choice]).model_dump(
            mode="json"
        )
        if not include_usage:
            del payload["usage"]
        return sse_event(payload)

    fast = CompletionChunks(cmpl_id, gen.created, model, include_usage=include_usage)
    offsets = [len(e) for e in echo]
    for index, text in enumerate(echo):
        if text:
            yield chunk(CompletionChoice(index=index, text=text, finish_reason=None))
    async for delta in gen:
        if not delta.logprobs and delta.finish_reason is None:
            offsets[delta.index] += len(delta.text)
            yield fast.text(delta.index, delta.text)  # the common event, per token
            continue
        logprobs = (
            convert.completion_logprobs(delta.logprobs, offsets[delta.index]) if delta.logprobs else None
        )
        offsets[delta.index] += len(delta.text)
        yield chunk(
            CompletionChoice(
                index=delta.index, text=delta.text, logprobs=logprobs, finish_reason=delta.finish_reason
            )
        )
    if include_usage:
        final = Completion(
            id=cmpl_id, created=gen.created, model=model, choices=[], usage=convert.usage(gen.usage)
        )
        yield sse_event(final.model_dump(mode="json"))
