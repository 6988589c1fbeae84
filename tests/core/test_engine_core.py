"""The engine core's loop body on the fake engine, message by message (no threads): what one step
emits, calls answered between steps and on the frontend, and messages that survive pickling."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest

from llmos.config import SchedulerConfig
from llmos.core import EngineCore, QueueChannel, serve
from llmos.core.engine_core import MAX_IDLE_WAIT_S
from llmos.core.messages import (
    AbortRequests,
    AddRequest,
    CallFailed,
    CoreDead,
    CoreReady,
    CoreSpec,
    Embed,
    EmbedReply,
    ErrorInfo,
    GetHealth,
    GetSequences,
    GetStats,
    HealthReply,
    RenderPrompt,
    SequencesReply,
    Shutdown,
    StatsReply,
    StepOutputs,
    Tokenize,
    TokensReply,
)
from llmos.engine.backends import make_engine
from llmos.engine.base import LoadSpec, SamplingParams, SequenceSpec
from llmos.engine.fake import FakeEngine
from llmos.errors import EngineDeadError, InvalidRequest, Overloaded, RateLimited

from .conftest import fake_spec


def core(spec: CoreSpec | None = None) -> EngineCore:
    spec = spec or fake_spec(n_slots=1)
    engine = FakeEngine()
    engine.load(spec.load)
    return EngineCore(engine, spec)


def add(seqno: int, rid: str, *, prompt: tuple[int, ...] = (1, 20, 30), max_tokens: int = 3) -> AddRequest:
    params = SamplingParams(temperature=0.0, max_tokens=max_tokens)
    return AddRequest(seqno, rid, SequenceSpec(rid, prompt, params), tenant="t", urgency=5)


def test_one_step_emits_every_output_with_counts_events_and_positions() -> None:
    c = core()
    assert c.step() is None and c.idle_wait() is None  # nothing to do: wait for a message
    assert c.handle(add(1, "a")) is None and c.handle(add(2, "b")) is None
    out = c.step()
    assert isinstance(out, StepOutputs) and out.added == 2
    assert [rid for rid, _ in out.outputs] == ["a"] and out.outputs[0][1].token_ids
    assert [(e.kind, e.request_id) for e in out.events] == [("queue", "a"), ("queue", "b"), ("admit", "a")]
    assert (out.counts.running, out.counts.queued) == (1, 1)
    assert out.positions is not None and [(p.request_id, p.position) for p in out.positions] == [("b", 0)]
    assert c.idle_wait() == 0.0  # it made progress: step again at once
    finals = []
    while c.scheduler.has_work:
        step = c.step()
        if step is not None:
            finals += [rid for rid, o in step.outputs if o.finish_reason == "length"]
    assert finals == ["a", "b"]


def test_a_request_refused_on_arrival_fails_in_the_next_outputs() -> None:
    c = core()
    c.handle(add(1, "empty", prompt=()))
    c.handle(add(2, "ok"))
    c.handle(add(3, "ok"))  # the same id twice
    out = c.step()
    assert out is not None
    failed = {rid: info.to_error() for rid, info in out.failed}
    assert isinstance(failed["empty"], InvalidRequest) and failed["ok"].code == "conflict"
    c.handle(AbortRequests(("ok", "unknown")))
    out = c.step()
    assert out is not None and [o.finish_reason for _, o in out.outputs] == ["abort"]


def test_calls_between_steps_and_on_the_frontend() -> None:
    c = core(fake_spec(embedding_dim=4))
    tokens = c.frontend(RenderPrompt(1, ({"role": "user", "content": "hi"},)))
    assert (
        isinstance(tokens, TokensReply) and tokens.call_id == 1 and tokens.tokens[0][0] == 3
    )  # <|im_start|>
    texts = c.frontend(Tokenize(2, ("ab", "c"), add_special=False))
    assert isinstance(texts, TokensReply) and texts.tokens == ((113, 114), (115,))
    embedded = c.handle(Embed(3, ((20, 21),)))
    assert isinstance(embedded, EmbedReply) and len(embedded.vectors[0]) == 4
    c.handle(add(1, "a", max_tokens=50))
    c.step()
    stats = c.handle(GetStats(4))
    assert isinstance(stats, StatsReply) and stats.stats.running == 1
    health = c.handle(GetHealth(5))
    assert isinstance(health, HealthReply) and health.health.slots_used == 1
    seqs = c.handle(GetSequences(6))
    assert isinstance(seqs, SequencesReply) and [s.seq_id for s in seqs.sequences] == ["a"]
    assert c.handle(Shutdown()) is None and c.finished


def test_a_dead_engine_fails_everything_in_the_next_outputs() -> None:
    c = core(fake_spec(n_slots=2))
    c.handle(add(1, "a", max_tokens=100))
    c.handle(add(2, "b", max_tokens=100))
    c.step()
    c.engine.kill()  # type: ignore[attr-defined]
    health = c.handle(GetHealth(8))
    assert isinstance(health, HealthReply) and not health.health.ok
    failed = c.handle(Embed(9, ((20,),)))  # a call that meets the dead engine kills the core
    assert isinstance(failed, CallFailed) and failed.error.error_type == "EngineDeadError"
    assert c.dead is not None
    out = c.step()
    assert c.dead is not None and out is not None
    assert {rid: info.error_type for rid, info in out.failed} == {
        "a": "EngineDeadError",
        "b": "EngineDeadError",
    }


def test_a_core_with_nothing_movable_looks_again_after_a_while() -> None:
    c = core(fake_spec(n_slots=1, n_ctx=64))
    c.handle(add(1, "a", prompt=tuple(range(20, 60)), max_tokens=10))
    c.handle(add(2, "b", prompt=tuple(range(20, 60)), max_tokens=10))
    c.step()
    c.scheduler.policy.runnable = lambda running, now: []  # type: ignore[method-assign]
    c.step()
    assert c.idle_wait() == MAX_IDLE_WAIT_S


def test_messages_survive_pickling() -> None:
    c = core()
    c.handle(add(1, "a"))
    out = c.step()
    assert pickle.loads(pickle.dumps(out)) == out
    for exc in (
        RateLimited("slow down", retry_after=3.0),
        Overloaded("full", retry_after=2.0),
        EngineDeadError("x"),
    ):
        back = pickle.loads(pickle.dumps(ErrorInfo.of(exc))).to_error()
        assert type(back) is type(exc) and back.message == exc.message
        assert getattr(back, "retry_after", None) == getattr(exc, "retry_after", None)
    assert type(ErrorInfo("NoSuchError", "m").to_error()).__name__ == "EngineGenerateError"
    assert ErrorInfo.of(ValueError("bad")).message == "ValueError: bad"


def test_serve_over_a_channel_answers_ready_or_dead() -> None:
    client, end = QueueChannel.pair()
    client.send(CoreSpec("nope", LoadSpec(model_path=Path("/x.gguf")), "m"))
    serve(end, make_engine)
    dead = client.recv()
    assert isinstance(dead, CoreDead) and dead.error is not None
    assert isinstance(dead.error.to_error(), InvalidRequest)
    with pytest.raises(EOFError):
        client.recv()

    client, end = QueueChannel.pair()
    client.send(CoreSpec("fake", LoadSpec(model_path=Path("/x.gguf")), "m", SchedulerConfig()))
    client.send(Shutdown())
    serve(end, make_engine)
    assert isinstance(client.recv(), CoreReady)
    with pytest.raises(EOFError):  # it unloaded and closed its end
        client.recv()
