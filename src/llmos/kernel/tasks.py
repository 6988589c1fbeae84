"""The kernel's side of the task pipelines: :mod:`llmos.tasks` runs over the kernel's chat path.

Each generation is one chat completion whose output is constrained by a grammar compiled from
the task's JSON Schema (the same path as ``response_format: json_schema`` on
``/v1/chat/completions``), so even a very small model answers with JSON that parses.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from llmos.kernel.types import GenerationParams, RequestMeta
from llmos.structured import ChatPlan, plan_chat
from llmos.tasks import GenerateCall, Generated, PromptSize, TaskRequest, TaskResult
from llmos.tasks import run_task as run_pipeline

if TYPE_CHECKING:
    from llmos.kernel.kernel import Kernel


def _plan(call: GenerateCall) -> ChatPlan:
    response_format = {
        "type": "json_schema",
        "json_schema": {"name": call.schema_name, "schema": call.schema, "strict": True},
    }
    return plan_chat(list(call.messages), response_format=response_format)


async def run_task(kernel: Kernel, task: str, request: TaskRequest, meta: RequestMeta) -> TaskResult:
    """Run task ``task`` for ``meta``'s tenant. Raises what :func:`llmos.tasks.run_task` and
    :meth:`Kernel.chat` raise (NotFound, ModelNotFound, InvalidRequest, EngineGenerateError...)."""

    async def generate(call: GenerateCall) -> Generated:
        plan = _plan(call)
        params = GenerationParams(
            max_tokens=call.max_tokens, temperature=call.temperature, seed=call.seed, grammar=plan.grammar
        )
        gen = await kernel.chat(call.model, plan.messages, params, meta)
        try:
            result = await gen.collect()
        finally:
            await gen.aclose()
        choice = result.choices[0]
        return Generated(
            text=choice.text,
            finish_reason=choice.finish_reason,
            prompt_tokens=result.usage.prompt_tokens,
            completion_tokens=result.usage.completion_tokens,
        )

    async def measure(call: GenerateCall) -> PromptSize | None:
        # Counting needs the model's tokenizer and chat template: make it resident (the
        # generation that follows needs that anyway), then have its core render and tokenize.
        await kernel.load(call.model, keep_alive=meta.keep_alive)
        loaded = kernel.loaded(call.model)
        if loaded is None:  # evicted in between: send the input as it is
            return None
        n_prompt = len(await loaded.core.render_prompt(_plan(call).messages))
        per_sequence = max(1, loaded.info.n_ctx // max(1, loaded.info.n_slots))
        return PromptSize(prompt_tokens=n_prompt, context_tokens=per_sequence)

    return await run_pipeline(task, request, generate=generate, measure=measure)
