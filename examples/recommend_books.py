"""Recommendation service over the bundled sample catalog.

Embeddings find candidates close to the wish and to what was read; the chat model picks among
them (its answer can only name candidate ids) and says why.

    python examples/recommend_books.py "a gripping mystery" --read "The Moonstone"
"""

from __future__ import annotations

import argparse

import llmos
from llmos.apps.recommend import Recommender


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("wish")
    parser.add_argument("--read", action="append", default=[], help="a title already read (repeatable)")
    parser.add_argument("--model", default="smollm2:135m")
    parser.add_argument("--embedding-model", default="minilm:l6")
    args = parser.parse_args()
    with llmos.Client() as client:
        rec = Recommender(client, args.model, embedding_model=args.embedding_model).recommend(
            args.wish, args.read
        )
    print(f"(candidates found with {rec.embedding_model})")
    for pick in rec.picks:
        print(f"- {pick.item.title} by {pick.item.author}, {pick.item.price_text}: {pick.reason}")


if __name__ == "__main__":
    main()
