"""Dialogue service with tools and memory kept on the server.

The assistant can call ``get_weather`` (a local fixture), ``calculator`` (a safe parser) and
``search_catalog``; every turn is appended to a conversation stored in the server's database,
so a later run can continue it with ``--conversation``.

    python examples/assistant_with_tools.py "What's the weather in Oslo?" --tool get_weather
    python examples/assistant_with_tools.py "And what is 17 * 23?" --tool calculator --conversation conv_...
"""

from __future__ import annotations

import argparse
import json

import llmos
from llmos.apps.dialogue import Assistant, force_tool


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("message")
    parser.add_argument("--model", default="smollm2:135m")
    parser.add_argument("--conversation", help="continue this conversation")
    parser.add_argument("--tool", help="make the model call this tool (small models rarely choose one)")
    args = parser.parse_args()
    with llmos.Client() as client:
        assistant = Assistant(client, args.model)
        cid = args.conversation or assistant.start(title="example")
        turn = assistant.ask(cid, args.message, tool_choice=force_tool(args.tool) if args.tool else "auto")
        for call in turn.tool_calls:
            print(f"[tool] {call.name}({json.dumps(call.arguments)}) -> {json.dumps(call.result)}")
        print(turn.reply)
        print(f"(conversation {cid}: {client.conversations.get(cid).message_count} messages)")


if __name__ == "__main__":
    main()
