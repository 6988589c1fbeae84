"""``llmos run MODEL [PROMPT]``: stream an answer, or chat interactively (``/bye`` quits).

Through the running server (the SDK) when one answers at ``LLMOS_BASE_URL``; otherwise the
model runs in this process through the kernel. A catalog model you lack is pulled first.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Annotated, Any

import typer

from llmos.cli.runtime import PullProgress, err_console, reachable_client

if TYPE_CHECKING:
    from llmos.config import Config
    from llmos.kernel import Kernel
    from llmos.sdk import Client
    from llmos.types import ChatMessage

BYE = "/bye"
PROMPT = ">>> "


def _write(text: str) -> None:
    sys.stdout.write(text)
    sys.stdout.flush()


def _read(prompt: str = PROMPT) -> str | None:
    """A line from the user; None at end of input or ``/bye``."""
    try:
        line = input(prompt)
    except EOFError:
        return None
    return None if line.strip() == BYE else line


def run(
    model: Annotated[str, typer.Argument(help="Model name, e.g. smollm2:135m")],
    prompt: Annotated[str | None, typer.Argument(help="Prompt; without one, an interactive chat")] = None,
    max_tokens: Annotated[int | None, typer.Option(help="Most tokens to generate per answer")] = None,
    temperature: Annotated[float | None, typer.Option(help="Sampling temperature (0: greedy)")] = None,
    seed: Annotated[int | None, typer.Option(help="Sampling seed")] = None,
    local: Annotated[
        bool, typer.Option("--local", help="Run in this process even if a server is up")
    ] = False,
) -> None:
    """Run a model: stream the answer to PROMPT, or chat (type /bye to quit)."""
    from llmos.config import load_config

    config = load_config()
    params = {
        k: v
        for k, v in {"max_tokens": max_tokens, "temperature": temperature, "seed": seed}.items()
        if v is not None
    }
    client = None if local else reachable_client(config)
    if client is not None:
        with client:
            _run_remote(client, model, prompt, params)
    else:
        import asyncio  # only a model run in this process needs an event loop

        asyncio.run(_run_local(config, model, prompt, params))


def _run_remote(client: Client, model: str, prompt: str | None, params: dict[str, Any]) -> None:
    with PullProgress(model) as bar:
        handle = client.load_model(model, progress=bar)
    history: list[ChatMessage] = []
    line = prompt if prompt is not None else _read()
    while line is not None:
        history.append({"role": "user", "content": line})
        reply = ""
        for text in handle.stream(messages=history, **params):
            reply += text
            _write(text)
        _write("\n")
        history.append({"role": "assistant", "content": reply})
        if prompt is not None:
            return
        line = _read()


async def _run_local(config: Config, model: str, prompt: str | None, params: dict[str, Any]) -> None:
    # The kernel (engine, storage, scheduler) is imported only when the model runs in this process.
    import asyncio

    from llmos.kernel import GenerationParams, InferenceRequest, RequestMeta, build_kernel

    kernel = build_kernel(config)
    await kernel.start()
    try:
        await _ensure(kernel, model)
        history: list[ChatMessage] = []
        line = prompt if prompt is not None else await asyncio.to_thread(_read)
        while line is not None:
            history.append({"role": "user", "content": line})
            meta = RequestMeta(request_id=kernel.new_request_id(), tenant=config.anonymous_tenant)
            wanted = InferenceRequest(
                model, meta, messages=tuple(history), sampling=GenerationParams(**params)
            )
            reply = ""
            async with await kernel.submit(wanted) as answer:
                async for delta in answer:
                    reply += delta.text
                    _write(delta.text)
            _write("\n")
            history.append({"role": "assistant", "content": reply})
            if prompt is not None:
                return
            line = await asyncio.to_thread(_read)
    finally:
        await kernel.shutdown(0.0)


async def _ensure(kernel: Kernel, model: str) -> None:
    events = kernel.ensure_model(model)
    first = await anext(events, None)
    if first is None:
        return
    with PullProgress(f"pulling {model}") as bar:
        bar(first)
        async for event in events:
            bar(event)
    err_console.print(f"pulled {model}")


def register(app: typer.Typer) -> None:
    app.command("run")(run)
