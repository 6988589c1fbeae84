"""What one step feeds: each sequence's chunk of tokens, and the step's work by adapter set.

Without a plan, a step gives one token to every decoding sequence first, then the rest of the
batch to prompts still being read, in admission order. With a :class:`~llmos.engine.base.StepPlan`
(the scheduler's), each named sequence gets the tokens the plan gives it.

llama.cpp applies LoRA adapters per context (``adapters.py``): the step decodes each adapter set
of its work on its own, the set the context already has first (one switch fewer).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from llmos.engine.base import AdapterSet, StepPlan
from llmos.engine.llamacpp.sequence import Sequence as Seq
from llmos.errors import InvalidRequest
from llmos.types import SeqId, TokenId


@dataclass
class Work:
    """One sequence's part of a step: the tokens it feeds, and whether it samples after them."""

    seq: Seq
    chunk: list[TokenId]
    sample: bool
    index: int = -1
    """The batch position of its last token (set when the batch is built)."""


def plan_work(seqs: Mapping[SeqId, Seq], plan: StepPlan | None, n_batch: int) -> list[Work]:
    """The step's work for the resident ``seqs`` within ``n_batch`` tokens (see the module
    docstring). Raises InvalidRequest for a plan over the batch or giving a sequence < 1 token."""
    budget = n_batch
    work: list[Work] = []
    if plan is None:
        live = [s for s in seqs.values() if s.unfed > 0]
        for s in live:
            if s.unfed == 1 and budget > 0:
                work.append(Work(s, s.tokens[s.n_past :], True))
                budget -= 1
        for s in live:
            if s.unfed > 1 and budget > 0:
                chunk, sample = s.next_chunk(budget)
                work.append(Work(s, chunk, sample))
                budget -= len(chunk)
        return work
    total = sum(plan.tokens.values())
    if total > budget:
        raise InvalidRequest(f"plan feeds {total} tokens, more than n_batch={budget}", param="plan")
    for seq_id, n in plan.tokens.items():
        if n < 1:
            raise InvalidRequest(f"plan gives {n} tokens to {seq_id!r}", param="plan")
        seq = seqs.get(seq_id)
        if seq is None or seq.unfed == 0:
            continue
        chunk, sample = seq.next_chunk(n)
        work.append(Work(seq, chunk, sample))
    return work


def by_adapter_set(work: list[Work], active: AdapterSet) -> list[tuple[AdapterSet, list[Work]]]:
    """The step's work by adapter set, the context's current set (``active``) first."""
    groups: dict[AdapterSet, list[Work]] = {}
    for w in work:
        groups.setdefault(w.seq.spec.adapters, []).append(w)
    if len(groups) < 2:
        return list(groups.items())
    return sorted(groups.items(), key=lambda item: item[0] != active)
