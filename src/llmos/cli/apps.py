"""``llmos apps …``: the application services (NLU, dialogue with tools, recommendations,
customer service), run against the server through the SDK like any other client."""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from typing import Annotated, ParamSpec, TypeVar

import typer

from llmos.cli.errors import handle_errors, stderr
from llmos.cli.runtime import out_console, require_server

# The apps (and the SDK under them) are imported by the command that runs one, not here:
# ``llmos --help`` and every other command stay clear of them.

apps_app = typer.Typer(
    help="Application services built on the SDK: nlu, chat, recommend, support.", rich_markup_mode=None
)

P = ParamSpec("P")
R = TypeVar("R")
EXIT_APP_ERROR = 12

ModelOption = Annotated[
    str | None, typer.Option("--model", "-m", help="Chat model (default: the server's default)")
]
ConversationOption = Annotated[
    str | None, typer.Option("--conversation", "-c", help="Continue this conversation (id)")
]
EmbeddingModelOption = Annotated[
    str | None, typer.Option("--embedding-model", help="Model that embeds the catalog (default minilm:l6)")
]
MessageOption = Annotated[
    str | None, typer.Option("--message", help="Say this once and exit (otherwise: an interactive session)")
]


def _app_errors(fn: Callable[P, R]) -> Callable[P, R]:
    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        from llmos.apps.structured_chat import AppError

        try:
            return fn(*args, **kwargs)
        except AppError as exc:
            stderr.print(f"[bold red]error:[/] {exc}")
            raise typer.Exit(EXIT_APP_ERROR) from None

    return wrapper


def _model(model: str | None) -> str:
    from llmos.config import load_config

    return model or load_config().default_model


QUIT = frozenset({"/bye", "/exit", "/quit", "exit", "quit"})
"""What ends an interactive session: ``/bye`` as in ``llmos run``, and the usual words."""


def _session(
    first: str | None, prompt: str, answer: Callable[[str], None], greeting: str | None = None
) -> None:
    """One message (``first``), or a read-answer loop (after ``greeting``) until EOF or a
    :data:`QUIT` word."""
    if first is not None:
        answer(first)
        return
    if greeting:
        out_console.print(greeting, markup=False, highlight=False)
    stderr.print("[dim](type /bye to leave)[/]")
    while True:
        try:
            text = input(prompt)
        except EOFError:
            return
        if text.strip().lower() in QUIT:
            return
        if text.strip():
            answer(text)


def nlu(
    text: Annotated[str, typer.Argument(help="The utterance to understand")], model: ModelOption = None
) -> None:
    """Intent, entities and relations of TEXT, as JSON."""
    from llmos.apps.nlu import NLU

    with require_server() as client:
        result = NLU(client, _model(model)).parse(text)
    typer.echo(
        json.dumps(
            {
                "intent": result.intent,
                "entities": [{"text": e.text, "type": e.type} for e in result.entities],
                "relations": [
                    {"subject": r.subject, "relation": r.relation, "object": r.object}
                    for r in result.relations
                ],
            },
            indent=2,
            ensure_ascii=False,
        )
    )


def chat(
    model: ModelOption = None,
    conversation: ConversationOption = None,
    message: MessageOption = None,
    tool: Annotated[
        str | None,
        typer.Option(
            "--tool", help="Make the model call this tool (get_weather, calculator, search_catalog)"
        ),
    ] = None,
) -> None:
    """Talk to the assistant with tools (weather, calculator, catalog); memory is kept on the server."""
    from llmos.apps.dialogue import Assistant, force_tool

    with require_server() as client:
        assistant = Assistant(client, _model(model))
        cid = conversation or assistant.start(title="llmos apps chat")
        stderr.print(f"conversation {cid}")

        def answer(text: str) -> None:
            turn = assistant.ask(cid, text, tool_choice=force_tool(tool) if tool else "auto")
            for call in turn.tool_calls:
                stderr.print(
                    f"[dim]tool {call.name}({json.dumps(call.arguments)}) → {json.dumps(call.result)}[/]"
                )
            out_console.print(turn.reply, markup=False, highlight=False)

        _session(message, "you> ", answer)


def recommend(
    wish: Annotated[str, typer.Argument(help="What the reader would like, in their words")],
    history: Annotated[
        list[str] | None, typer.Option("--read", "-r", help="A title (or id) already read; repeatable")
    ] = None,
    n: Annotated[int, typer.Option("-n", min=1, max=5, help="How many picks")] = 2,
    model: ModelOption = None,
    embedding_model: EmbeddingModelOption = None,
) -> None:
    """Books from the sample catalog for WISH (and what was read), each with a reason."""
    from llmos.apps.recommend import DEFAULT_EMBEDDING_MODEL, Recommender

    with require_server() as client:
        rec = Recommender(
            client, _model(model), embedding_model=embedding_model or DEFAULT_EMBEDDING_MODEL
        ).recommend(wish, history or [], n=n)
    stderr.print(f"[dim]candidates found with {rec.embedding_model}[/]")
    for pick in rec.picks:
        out_console.print(
            f"{pick.item.title} by {pick.item.author} ({pick.item.price_text}) — {pick.reason}",
            markup=False,
            highlight=False,
        )


def support(
    model: ModelOption = None,
    conversation: ConversationOption = None,
    message: MessageOption = None,
    embedding_model: EmbeddingModelOption = None,
) -> None:
    """The bookshop's customer-service bot (try: "I want to order a novel")."""
    from llmos.apps.recommend import DEFAULT_EMBEDDING_MODEL
    from llmos.apps.support import GREETING, SupportBot

    with require_server() as client:
        bot = SupportBot(client, _model(model), embedding_model=embedding_model or DEFAULT_EMBEDDING_MODEL)
        cid = conversation or bot.start()
        stderr.print(f"conversation {cid}")

        def answer(text: str) -> None:
            out_console.print(bot.respond(cid, text).text, markup=False, highlight=False)

        _session(message, "customer> ", answer, greeting=None if conversation else GREETING)


def register(app: typer.Typer) -> None:
    for name, fn in (("nlu", nlu), ("chat", chat), ("recommend", recommend), ("support", support)):
        apps_app.command(name)(handle_errors(_app_errors(fn)))
    app.add_typer(apps_app, name="apps")
