"""Shared prefill: prompts read in the same step compute their common start once."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from llmos.engine.base import SamplingParams, SequenceSpec
from llmos.engine.llamacpp import LlamaCppEngine
from llmos.engine.llamacpp.shared_prefill import group_shared_prefixes

from .conftest import Run, assert_near_greedy, chat_prompt, collect, drive

MakeEngine = Callable[..., LlamaCppEngine]
SYSTEM = "You are a careful assistant for a bookshop. Answer in one short sentence, politely."
QUESTIONS = ["Do you sell maps?", "When do you open?", "Can I order a novel?", "Is there a cafe?"]


def test_chunks_sharing_a_start_follow_the_first_one() -> None:
    common = list(range(100, 130))  # 30 shared tokens
    chunks = [
        ("a", [*common, 1, 2, 3]),
        ("b", [*common, 4, 5]),
        ("other", list(range(500, 540))),
        ("c", common[:20] + [9] * 10),
    ]
    [group] = group_shared_prefixes(chunks, min_tokens=16)
    assert group.donor == "a"
    assert group.followers == [("b", 30), ("c", 20)]
    assert group.run == 30


def test_every_chunk_keeps_a_token_of_its_own() -> None:
    same = list(range(40))
    [group] = group_shared_prefixes([("a", same), ("b", same), ("c", [*same, 7])], min_tokens=16)
    assert group.run == 39 and group.followers == [("b", 39), ("c", 39)]


def test_short_shares_and_lone_chunks_form_no_group() -> None:
    common = list(range(10))
    assert group_shared_prefixes([("a", common + [1] * 20), ("b", common + [2] * 20)], min_tokens=16) == []
    assert group_shared_prefixes([("a", list(range(50)))], min_tokens=16) == []
    assert group_shared_prefixes([("a", list(range(50))), ("b", list(range(50)))], min_tokens=0) == []


def test_two_system_prompts_make_two_groups() -> None:
    x, y = list(range(20)), list(range(1000, 1020))
    groups = group_shared_prefixes(
        [("x1", [*x, 1]), ("y1", [*y, 1]), ("x2", [*x, 2]), ("y2", [*y, 2]), ("x3", [*x, 3])], min_tokens=16
    )
    assert [(g.donor, g.followers) for g in groups] == [
        ("x1", [("x2", 20), ("x3", 20)]),
        ("y1", [("y2", 20)]),
    ]


@pytest.mark.integration
@pytest.mark.parametrize("kv_unified", [False, True])
def test_shared_prefill_computes_the_system_prompt_once_and_changes_no_token(
    make_engine: MakeEngine, kv_unified: bool
) -> None:
    params = SamplingParams(temperature=0.0, max_tokens=24, ignore_eos=True)
    outputs: dict[int, dict[str, list[int]]] = {}
    for share in (16, 0):
        engine = make_engine(extra={"kv_unified": kv_unified, "shared_prefill_min": share})
        prompts = [chat_prompt(engine, q, SYSTEM) for q in QUESTIONS]
        for i, p in enumerate(prompts):
            engine.admit(SequenceSpec(f"s{i}", p, params))
        runs: dict[str, Run] = {}
        first = engine.step()
        collect(first.outputs, runs)
        drive(engine, runs)
        outputs[share] = {k: v.tokens for k, v in runs.items()}
        if share:
            common = min(
                next(j for j, (x, y) in enumerate(zip(prompts[0], p, strict=False)) if x != y)
                for p in prompts[1:]
            )
            assert common > 20
            # The first step read every prompt, each follower's shared start only once.
            assert first.n_tokens == sum(len(p) for p in prompts) - 3 * common
            assert engine.shared_prefill_tokens == 3 * common
        else:
            assert first.n_tokens == sum(len(p) for p in prompts)
            assert engine.shared_prefill_tokens == 0
    assert all(len(t) == 24 for t in outputs[16].values())
    if not kv_unified:  # per-slot streams: the copied cells are bit-identical to computed ones
        assert outputs[16] == outputs[0]
        return
    # One shared buffer lays cells out differently, and llama.cpp is not bit-exact across
    # layouts: a near-tie may flip, so each token must be the greedy pick of a reference pass.
    weights = Path(engine.info.weights_path)
    for i, p in enumerate(prompts):
        assert outputs[16][f"s{i}"][:8] == outputs[0][f"s{i}"][:8]
        assert_near_greedy(weights, p, outputs[16][f"s{i}"])
