"""``POST /v1/completions`` (legacy text completions): parse HTTP, admit, have the kernel
answer, write HTTP."""

from __future__ import annotations

from collections.abc import AsyncIterator

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse

from llmos.kernel.answer import Answer
from llmos.kernel.inference_request import InferenceRequest
from llmos.server import convert
from llmos.server.auth import PrincipalDep
from llmos.server.bounds import check_count
from llmos.server.chunks import CompletionChunks
from llmos.server.meta import request_meta
from llmos.server.metering import CLIENT_CLOSED, admit, meter, metered
from llmos.server.routes.deps import KernelDep, server_state
from llmos.server.schemas.common import ErrorResponse
from llmos.server.schemas.completions import Completion, CompletionChoice, CompletionRequest
from llmos.server.sse import sse_event

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
    answer = await kernel.submit(InferenceRequest(body.model, meta, prompts=tuple(prompts), sampling=params))
    await meter(request).follow(answer)
    headers = {**convert.generation_headers(answer), **lowered}
    life = server_state(request).lifecycle
    cmpl_id = f"cmpl-{meta.request_id}"
    # Choice i answers prompt i // n (OpenAI's order).
    echo = [prompts[i // body.n] if body.echo else "" for i in range(answer.n_choices)]
    if body.stream:
        include_usage = body.stream_options is not None and body.stream_options.include_usage
        events = _chunks(answer, cmpl_id, body.model, echo, include_usage)
        return convert.sse_response(events, answer, headers=headers, life=life, on_error=meter(request).fail)
    result = await convert.collected(request, answer, life)
    if result is None:
        return Response(status_code=CLIENT_CLOSED)
    completion = Completion(
        id=cmpl_id,
        created=answer.created,
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
    answer: Answer, cmpl_id: str, model: str, echo: list[str], include_usage: bool
) -> AsyncIterator[bytes]:
    def chunk(choice: CompletionChoice) -> bytes:
        payload = Completion(id=cmpl_id, created=answer.created, model=model, choices=[choice]).model_dump(
            mode="json"
        )
        if not include_usage:
            del payload["usage"]
        return sse_event(payload)

    fast = CompletionChunks(cmpl_id, answer.created, model, include_usage=include_usage)
    offsets = [len(e) for e in echo]
    for index, text in enumerate(echo):
        if text:
            yield chunk(CompletionChoice(index=index, text=text, finish_reason=None))
    async for delta in answer:
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
            id=cmpl_id, created=answer.created, model=model, choices=[], usage=convert.usage(answer.usage)
        )
        yield sse_event(final.model_dump(mode="json"))
