"""Task pipelines through the SDK: every answer is JSON valid against the task's schema.

llmos serve &            # in another terminal
python examples/tasks_demo.py [--model smollm2:135m]
"""

from __future__ import annotations

import argparse
import json

import llmos

REVIEW = """<div class="review"><h2>Disappointed</h2>
<p>The headphones from Sonora arrived in Lisbon two weeks late, and the left ear&nbsp;cup rattles.
Support never answered my e-mail.</p></div>"""


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", default="smollm2:135m")
    args = parser.parse_args()
    with llmos.Client() as client:
        runs = {
            "sentiment": client.tasks.sentiment(REVIEW, model=args.model),
            "classify": client.tasks.classify(
                REVIEW, ["shipping", "quality", "billing"], multi_label=True, model=args.model
            ),
            "summarize": client.tasks.summarize(REVIEW, max_words=20, model=args.model),
            "translate": client.tasks.translate("Where is my parcel?", "Spanish", model=args.model),
            "extract_entities": client.tasks.extract_entities(REVIEW, model=args.model),
        }
        for name, result in runs.items():
            cleaned = "HTML stripped" if result.input.html_stripped else "plain text"
            print(
                f"{name:17} {json.dumps(result.output, ensure_ascii=False)}  ({cleaned}, {result.usage.total_tokens} tokens)"
            )


if __name__ == "__main__":
    main()
