"""The engine core: one model's engine and its scheduler, in one loop, fed by messages.

:class:`EngineCore` is the loop's body and knows nothing of processes or pipes; :func:`serve`
is the loop itself over a :class:`~llmos.core.channel.Channel`, the same whoever hosts it (a
child process, a thread for tests, later a Ray actor)::

    receive messages → schedule → step → emit one StepOutputs

* A **frontend thread** reads the channel. It answers :class:`~llmos.core.messages.RenderPrompt`
  and :class:`~llmos.core.messages.Tokenize` itself, at once, while the loop decodes (the engine's
  template and tokenizer are safe beside a step: ``llama_decode`` releases the GIL), and puts
  every other message in the loop's inbox.
* The **loop** (the thread that called :func:`serve`) takes what the inbox holds (waiting only
  when there is nothing to do), handles it, runs one scheduler step (one engine forward pass),
  and sends one :class:`~llmos.core.messages.StepOutputs` for all sequences. No step waits on
  another process.

When the engine dies the scheduler fails every request, the loop sends its last outputs and
:class:`~llmos.core.messages.CoreDead`, and returns. When the client goes away (the channel
closes) the loop returns too; :func:`serve` then unloads the engine.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
from collections.abc import Callable
from typing import Any

from llmos.core.channel import Channel
from llmos.core.messages import (
    FRONTEND_CALLS,
    AbortAll,
    AbortRequests,
    AddRequest,
    CallFailed,
    CoreDead,
    CoreReady,
    CoreSpec,
    Embed,
    EmbedReply,
    ErrorInfo,
    FromCore,
    GetHealth,
    GetSequences,
    GetStats,
    HealthReply,
    RenderPrompt,
    Reply,
    SequencesReply,
    SetPolicy,
    SetTenantWeights,
    Shutdown,
    StatsReply,
    StepOutputs,
    Tokenize,
    TokensReply,
)
from llmos.engine.base import Engine, SeqOutput
from llmos.errors import EngineDeadError, InvalidRequest, LLMOSError
from llmos.scheduler import GenerationRequest, ModelScheduler, RequestClass, SchedulerEvent, make_policy

logger = logging.getLogger(__name__)

POSITIONS_INTERVAL_S = 0.5
"""Queue positions are published when the queue changes, and at least this often while it is not
empty (a policy's order may change with time alone: aging, fair-share counters)."""
MAX_IDLE_WAIT_S = 1.0
"""With requests waiting that nothing can move (e.g. no KV room), look again this often."""

_CLOSED = object()


class EngineCore:
    """One loaded engine and its :class:`ModelScheduler`. See the module docstring.

    Not thread-safe, except :meth:`frontend`, which may run on one other thread beside the rest.
    """

    def __init__(
        self, engine: Engine, spec: CoreSpec, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.engine = engine
        self.spec = spec
        self._clock = clock
        self._events: list[SchedulerEvent] = []
        self.scheduler = ModelScheduler(
            engine, model=spec.model, config=spec.scheduler, clock=clock, on_event=self._record
        )
        self.scheduler.set_tenant_weights(spec.tenant_weights)
        self._failed: list[tuple[str, ErrorInfo]] = []
        self._added = 0
        self._published_added = 0
        self._positions_at = -1e18
        self._frontend_lock = threading.Lock()
        self.finished = False
        """A Shutdown arrived: the loop returns once it has handled this round of messages."""

    def _record(self, event: SchedulerEvent) -> None:
        self._events.append(event)

    @property
    def dead(self) -> str | None:
        """Why the engine died, once it has."""
        return self.scheduler.dead

    @property
    def has_work(self) -> bool:
        return self.scheduler.has_work or bool(self._failed)

    def idle_wait(self) -> float | None:
        """How long the loop may wait for a message before stepping again (None: until one comes)."""
        if not self.scheduler.has_work:
            return None if not self._failed else 0.0
        if self.scheduler.progressed:
            return 0.0
        deadline = self.scheduler.next_deadline()
        if deadline is None:
            return MAX_IDLE_WAIT_S
        return min(MAX_IDLE_WAIT_S, max(0.0, deadline - self._clock()))

    # -- messages ----------------------------------------------------------------------------

    def frontend(self, call: RenderPrompt | Tokenize) -> Reply:
        """Answer a render or tokenize call; safe on another thread while the loop steps."""
        try:
            with self._frontend_lock:
                if isinstance(call, RenderPrompt):
                    text = self.engine.render_chat(
                        list(call.messages),
                        add_generation_prompt=call.add_generation_prompt,
                        tools=call.tools,
                    )
                    tokens = self.engine.tokenize(text, add_special=False, parse_special=True)
                    return TokensReply(call.call_id, (tuple(tokens),))
                return TokensReply(
                    call.call_id,
                    tuple(
                        tuple(
                            self.engine.tokenize(
                                t, add_special=call.add_special, parse_special=call.parse_special
                            )
                        )
                        for t in call.texts
                    ),
                )
        except Exception as exc:  # every failure goes back to the caller, typed
            return CallFailed(call.call_id, ErrorInfo.of(exc))

    def handle(self, msg: Any) -> Reply | None:
        """Handle one message on the loop's thread; a call's reply, or None for a command."""
        try:
            return self._handle(msg)
        except EngineDeadError as exc:
            self.scheduler.die(exc)
            return CallFailed(msg.call_id, ErrorInfo.of(exc)) if hasattr(msg, "call_id") else None
        except Exception as exc:
            if hasattr(msg, "call_id"):
                return CallFailed(msg.call_id, ErrorInfo.of(exc))
            logger.exception("engine core of %s: %s failed", self.spec.model, type(msg).__name__)
            return None

    def _handle(self, msg: Any) -> Reply | None:
        if isinstance(msg, AddRequest):
            self._add(msg)
        elif isinstance(msg, AbortRequests):
            for rid in msg.request_ids:
                self.scheduler.abort(rid)
        elif isinstance(msg, Embed):
            vectors = self.engine.embed([list(x) for x in msg.inputs], normalize=msg.normalize)
            return EmbedReply(msg.call_id, tuple(tuple(v) for v in vectors))
        elif isinstance(msg, GetStats):
            return StatsReply(msg.call_id, self.scheduler.snapshot())
        elif isinstance(msg, GetHealth):
            return HealthReply(msg.call_id, self.engine.health())
        elif isinstance(msg, GetSequences):
            return SequencesReply(msg.call_id, tuple(self.engine.sequences()))
        elif isinstance(msg, SetTenantWeights):
            self.scheduler.set_tenant_weights(msg.weights)
        elif isinstance(msg, SetPolicy):
            self.scheduler.set_policy(make_policy(msg.name, self.spec.scheduler))
        elif isinstance(msg, AbortAll):
            self.scheduler.abort_all()
        elif isinstance(msg, Shutdown):
            self.finished = True
        elif isinstance(msg, FRONTEND_CALLS):
            return self.frontend(msg)
        else:
            raise InvalidRequest(f"an engine core does not understand {type(msg).__name__}")
        return None

    def _add(self, msg: AddRequest) -> None:
        self._added = msg.seqno
        try:
            deadline = None if msg.deadline_s is None else self._clock() + msg.deadline_s
            cls = RequestClass(tenant=msg.tenant, urgency=msg.urgency, deadline=deadline)
            self.scheduler.add(GenerationRequest(request_id=msg.request_id, spec=msg.spec, cls=cls))
        except LLMOSError as exc:
            self._failed.append((msg.request_id, ErrorInfo.of(exc)))

    # -- the step ----------------------------------------------------------------------------

    def step(self) -> StepOutputs | None:
        """One scheduler step; what it produced (None when there is nothing new to tell)."""
        deliveries = self.scheduler.step()
        events, self._events = self._events, []
        failed, self._failed = self._failed, []
        outputs: list[tuple[str, SeqOutput]] = []
        for rid, item in deliveries:
            if isinstance(item, SeqOutput):
                outputs.append((rid, item))
            else:
                failed.append((rid, ErrorInfo.of(item)))
        positions = None
        now = self._clock()
        if self.scheduler.has_work and (events or now - self._positions_at >= POSITIONS_INTERVAL_S):
            positions = self.scheduler.positions()
            self._positions_at = now
        if not (outputs or failed or events or positions) and self._added == self._published_added:
            return None
        self._published_added = self._added
        return StepOutputs(
            outputs=tuple(outputs),
            failed=tuple(failed),
            events=tuple(events),
            counts=self.scheduler.counts(),
            added=self._added,
            positions=positions,
        )

    def unload(self) -> None:
        """Unload the engine (waiting for a frontend call in progress)."""
        with self._frontend_lock:
            self.engine.unload()


class Inbox:
    """Messages for the loop, from the frontend thread."""

    def __init__(self) -> None:
        self._q: queue.SimpleQueue[Any] = queue.SimpleQueue()

    def put(self, msg: Any) -> None:
        self._q.put(msg)

    def take(self, wait: float | None) -> list[Any]:
        """Every message there is; with none, wait up to ``wait`` seconds (None: until one comes)."""
        items: list[Any] = []
        if wait is None or wait > 0:
            try:
                items.append(self._q.get(timeout=wait))
            except queue.Empty:
                return items
        while True:
            try:
                items.append(self._q.get_nowait())
            except queue.Empty:
                return items


def _frontend(channel: Channel, core: EngineCore, inbox: Inbox) -> None:
    """Read the channel: answer render/tokenize calls here, queue the rest for the loop."""
    while True:
        try:
            msg = channel.recv()
        except EOFError:
            inbox.put(_CLOSED)
            return
        if isinstance(msg, FRONTEND_CALLS):
            try:
                channel.send(core.frontend(msg))
            except EOFError:
                inbox.put(_CLOSED)
                return
        else:
            inbox.put(msg)


def run_loop(core: EngineCore, inbox: Inbox, send: Callable[[FromCore], None]) -> None:
    """*Receive → schedule → step → emit* until a Shutdown, a closed channel, or a dead engine."""
    while True:
        for msg in inbox.take(core.idle_wait()):
            if msg is _CLOSED:  # the client is gone: nobody waits for these requests any more
                return
            reply = core.handle(msg)
            if reply is not None:
                send(reply)
        if core.finished:
            return
        out = core.step()
        if out is not None:
            send(out)
        if core.dead is not None:
            send(CoreDead(core.dead))
            return


def serve(
    channel: Channel,
    make_engine: Callable[[str], Engine],
    *,
    clock: Callable[[], float] = time.monotonic,
    pid: int | None = None,
    after_load: Callable[[], None] | None = None,
) -> None:
    """Run one engine core over ``channel``: load what the first message (a CoreSpec) names,
    answer CoreReady (or CoreDead when loading fails), then loop until told to stop.
    ``after_load`` runs once the model is loaded (a process of its own freezes its startup
    objects there: :func:`llmos.procs.freeze_startup_objects`)."""
    try:
        spec = channel.recv()
    except EOFError:
        return
    if not isinstance(spec, CoreSpec):
        channel.send(CoreDead(f"expected a CoreSpec first, got {type(spec).__name__}"))
        return
    try:
        engine = make_engine(spec.backend)
        info = engine.load(spec.load)
    except Exception as exc:
        logger.info("engine core of %s could not load: %s", spec.model, exc)
        channel.send(CoreDead(f"loading failed: {exc}", ErrorInfo.of(exc)))
        channel.close()
        return
    core = EngineCore(engine, spec, clock=clock)
    if after_load is not None:
        after_load()
    inbox = Inbox()
    try:
        channel.send(CoreReady(info, os.getpid() if pid is None else pid))
        threading.Thread(
            target=_frontend,
            args=(channel, core, inbox),
            name=f"llmos-core-frontend:{spec.model}",
            daemon=True,
        ).start()
        run_loop(core, inbox, channel.send)
    except EOFError:
        logger.debug("engine core of %s: the client went away", spec.model)
    finally:
        try:
            core.unload()
        except Exception:  # best effort on the way out
            logger.debug("unload on exit failed", exc_info=True)
        channel.close()
