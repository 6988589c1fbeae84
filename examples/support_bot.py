"""Customer-service bot: an interactive session (try "I want to order a novel").

python examples/support_bot.py
"""

from __future__ import annotations

import argparse

import llmos
from llmos.apps.support import SupportBot


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="smollm2:135m")
    args = parser.parse_args()
    with llmos.Client() as client:
        bot = SupportBot(client, args.model)
        cid = bot.start()
        print(f"(conversation {cid}; an empty line ends)")
        while text := input("customer> ").strip():
            reply = bot.respond(cid, text)
            print(f"bot> {reply.text}")


if __name__ == "__main__":
    main()
