"""The kernel's side of the task pipelines: :mod:`llmos.tasks` runs over :meth:`ChatPath.submit`.

Each generation is one chat request whose output is constrained by the task's JSON Schema (the
same ``response_format: json_schema`` as on ``/v1/chat/completions``, planned by the kernel), so
even a very small model answers with JSON that parses.
"""

from __future__ import annotations

from typing import Protocol

from llmos.kernel.answer import Answer
from llmos.kernel.inference_request import InferenceRequest, OutputSpec
from llmos.kernel.types import GenerationParams, RequestMeta
from llmos.tasks import GenerateCall, Generated, PromptSize, TaskRequest, TaskResult
from llmos.tasks import run_task as run_pipeline


class ChatPath(Protocol):
    """What a task pipeline needs of the kernel (:class:`llmos.kernel.Kernel` is one): the one
    request path, and a count of the tokens a request would render to."""

    async def submit(self, request: InferenceRequest) -> Answer:
        """Compose and start ``request``; the caller collects and closes the answer."""
        ...

    async def measure_prompt(self, request: InferenceRequest) -> PromptSize | None:
        """The tokens ``request`` would render to, beside what one sequence may hold."""
        ...


def _request(call: GenerateCall, meta: RequestMeta) -> InferenceRequest:
    response_format = {
        "type": "json_schema",
        "json_schema": {"name": call.schema_name, "schema": call.schema, "strict": True},
    }
    return InferenceRequest(
        call.model,
        meta,
        messages=tuple(call.messages),
        sampling=GenerationParams(max_tokens=call.max_tokens, temperature=call.temperature, seed=call.seed),
        output=OutputSpec(response_format=response_format),
    )


async def run_task(kernel: ChatPath, task: str, request: TaskRequest, meta: RequestMeta) -> TaskResult:
    """Run task ``task`` for ``meta``'s tenant over ``kernel``'s chat path. Raises what
    :func:`llmos.tasks.run_task` and :meth:`ChatPath.submit` raise (NotFound, ModelNotFound,
    InvalidRequest, EngineGenerateError...)."""

    async def generate(call: GenerateCall) -> Generated:
        async with await kernel.submit(_request(call, meta)) as answer:
            result = await answer.collect()
        choice = result.choices[0]
        return Generated(
            text=choice.text,
            finish_reason=choice.finish_reason,
            prompt_tokens=result.usage.prompt_tokens,
            completion_tokens=result.usage.completion_tokens,
            digest=answer.digest,
        )

    async def measure(call: GenerateCall) -> PromptSize | None:
        return await kernel.measure_prompt(_request(call, meta))

    return await run_pipeline(task, request, generate=generate, measure=measure)
