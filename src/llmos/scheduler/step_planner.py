"""How one engine step's token budget is shared between the sequences holding slots."""

from __future__ import annotations

from collections.abc import Sequence

from llmos.types import SeqId


def plan_tokens(running: Sequence[tuple[SeqId, int]], budget: int) -> dict[SeqId, int]:
    """Tokens each sequence feeds in the next step.

    ``running`` lists ``(seq_id, prompt_tokens_left)`` most important first; 0 left means the
    sequence is decoding. Decoding sequences get one token each first (so prefill never stalls a
    running stream); the rest of ``budget`` goes to prefilling sequences in order, in chunks of at
    most what each has left. The total never exceeds ``budget``.
    """
    plan: dict[SeqId, int] = {}
    left = budget
    for sid, remaining in running:
        if remaining == 0 and left > 0:
            plan[sid] = 1
            left -= 1
    for sid, remaining in running:
        if remaining > 0 and left > 0:
            chunk = min(remaining, left)
            plan[sid] = chunk
            left -= chunk
    return plan
