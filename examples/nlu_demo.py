"""NLU service: intent, entities and relations as schema-valid JSON.

python examples/nlu_demo.py "I want to order Dracula by Bram Stoker"
"""

from __future__ import annotations

import argparse
import json

import llmos
from llmos.apps.nlu import NLU


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("text")
    parser.add_argument("--model", default="smollm2:135m")
    args = parser.parse_args()
    with llmos.Client() as client:
        result = NLU(client, args.model).parse(args.text)
    print(json.dumps(result.raw, indent=2, ensure_ascii=False))


if __name__ == "__main__":
    main()
