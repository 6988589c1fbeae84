"""The server's side of one engine core: what a resident model is, to the kernel.

:class:`CoreClient` starts a core on a :class:`~llmos.core.hosts.CoreHost`, and from then on
nothing on the event loop waits on it:

* :meth:`CoreClient.submit` answers at once: admission (429/503 with Retry-After) is decided
  here, from the queue counts the core publishes with every step plus the requests sent since;
  the request goes out through a writer thread and a :class:`~llmos.core.stream.RequestStream`
  comes back with its estimated queue position;
* what the core sends reaches the event loop in one wakeup per batch: a process's pipe is watched
  by the loop itself (no thread in between); another channel (a Ray actor's) is read by a
  **reader thread** that hands each step's outputs over in one ``call_soon_threadsafe``. On the
  loop they fan out to the streams (one wakeup per stream per step). The reader thread starts
  the core and reports its end;
* calls (render + tokenize, tokenize, embed, stats, health) are futures resolved on the loop;
* a dead core (SIGKILL, segfault, OOM kill, a dead engine) closes its pipe: the loop sees it at
  once, every request in flight fails with EngineDeadError, every pending call too, and
  ``on_dead`` tells the kernel, which unloads the model so the next request starts a fresh core.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import itertools
import logging
import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

from llmos.core.channel import Channel, PipeChannel
from llmos.core.hosts import CoreHost
from llmos.core.messages import (
    AbortAll,
    AbortRequests,
    AddRequest,
    CallFailed,
    CoreDead,
    CoreReady,
    CoreSpec,
    Embed,
    EmbedReply,
    GetHealth,
    GetSequences,
    GetStats,
    HealthReply,
    RenderPrompt,
    SequencesReply,
    SetPolicy,
    SetTenantWeights,
    Shutdown,
    StatsReply,
    StepOutputs,
    Tokenize,
    TokensReply,
)
from llmos.core.stream import RequestStream
from llmos.engine.base import EngineHealth, EngineInfo, SeqStatus
from llmos.errors import (
    Conflict,
    EngineDeadError,
    EngineError,
    InvalidRequest,
    LLMOSError,
    Overloaded,
    RateLimited,
)
from llmos.scheduler.admission import AdmissionControl
from llmos.scheduler.policies import POLICY_NAMES
from llmos.scheduler.request import GenerationRequest
from llmos.scheduler.request_events import SchedulerEvent
from llmos.scheduler.stats import SchedulerCounts, SchedulerStats
from llmos.types import ChatMessage, TenantId, TokenId

logger = logging.getLogger(__name__)

R = TypeVar("R")
STOP_TIMEOUT_S = 10.0
"""How long a core may take to unload and exit before it is killed."""


class CoreClient:
    """One engine core, seen from the server. Build, then ``await start()``; ``await close()``.

    Every method runs on the event loop that called :meth:`start`, except
    :meth:`set_tenant_weights` and :meth:`abort`, which any thread may call.
    ``on_event`` hears of each scheduler event (queue, admit, preempt, finish, reject...);
    ``on_dead`` is called once, on the loop, when the core dies.
    """

    def __init__(
        self,
        host: CoreHost,
        spec: CoreSpec,
        *,
        clock: Callable[[], float] = time.monotonic,
        on_event: Callable[[SchedulerEvent], None] | None = None,
        on_dead: Callable[[str], None] | None = None,
    ) -> None:
        self.on_orphans: Callable[[list[tuple[GenerationRequest, RequestStream]]], None] | None = None
        """Hears of the requests that had not started when the core died (a replica set routes
        them to another replica); without it they fail with the others."""
        self.host = host
        self.spec = spec
        self.model = spec.model
        self._clock = clock
        self._on_event = on_event
        self._on_dead = on_dead
        self.admission = AdmissionControl(
            spec.scheduler.max_queue, spec.scheduler.max_queue_per_tenant, self._drain_time
        )
        self._info: EngineInfo | None = None
        self._pid: int | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._ready: asyncio.Future[EngineInfo] | None = None
        self._reader: threading.Thread | None = None
        self._writer: threading.Thread | None = None
        self._outbox: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._gone = threading.Event()
        self._gone_reason = ""
        self._streams: dict[str, RequestStream] = {}
        self._costs: dict[str, int] = {}
        self._unstarted: dict[str, GenerationRequest] = {}
        self.outstanding_tokens = 0
        """Prompt plus maximum new tokens of every request in flight (a router's load measure)."""
        self._calls: dict[int, asyncio.Future[Any]] = {}
        self._call_ids = itertools.count(1)
        self._seqnos = itertools.count(1)
        self._unseen: deque[tuple[int, TenantId]] = deque()
        self._counts = SchedulerCounts(running=0, queued=0, tenants=(), expected_service_s=1.0)
        self._accepting = True
        self._closing = False
        self._idle: asyncio.Event | None = None
        self.dead: str | None = None
        """Why the core died, once it has."""
        self.rejected = 0
        """Requests refused at admission (429/503) since the core started."""
        self.last_stats: SchedulerStats | None = None
        """The answer of the last :meth:`stats` call."""

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> EngineInfo:
        """Start the core and load the model; raises what loading raised (EngineDeadError if the
        core died first). Cancelling it stops the core."""
        loop = asyncio.get_running_loop()
        self._loop = loop
        self._idle = asyncio.Event()
        self._idle.set()
        self._ready = loop.create_future()
        self._reader = threading.Thread(
            target=self._read, name=f"llmos-core-reader:{self.model}", daemon=True
        )
        self._reader.start()
        try:
            info = await self._ready
        except BaseException:  # loading failed, or the caller gave up: the core must not linger
            self._closing = True
            self._outbox.put(Shutdown())
            self._outbox.put(None)
            await asyncio.shield(asyncio.to_thread(self._join, 0.0))
            raise
        self._info = info
        return info

    @property
    def info(self) -> EngineInfo:
        if self._info is None:
            raise EngineError("the engine core is not started")
        return self._info

    @property
    def pid(self) -> int | None:
        """The core's process id."""
        return self._pid

    @property
    def alive(self) -> bool:
        return self._info is not None and self.dead is None and not self._closing

    async def drain(self, grace_s: float) -> None:
        """Refuse new requests; let those in flight finish for up to ``grace_s`` seconds, then
        abort the rest (running ones end with ``abort``, queued ones fail with Overloaded)."""
        self._accepting = False
        if self._idle is None or self.dead is not None:
            return
        if self._streams and grace_s > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._idle.wait(), grace_s)
        if self._streams and self.dead is None:
            self._send(AbortAll())
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._idle.wait(), STOP_TIMEOUT_S)

    async def close(self, drain_timeout: float = 0.0) -> None:
        """Drain (see :meth:`drain`), unload the engine and stop the core. Idempotent."""
        if self._closing:
            return
        await self.drain(drain_timeout)
        self._closing = True
        if self.dead is None:
            self._send(Shutdown())
        self._outbox.put(None)
        await asyncio.to_thread(self._join, STOP_TIMEOUT_S)
        self._fail_all(EngineDeadError(f"the engine core of {self.model} was closed"))

    def _join(self, timeout: float) -> None:
        """Wait up to ``timeout`` seconds for the core to end (then end it), and for the threads."""
        reader = self._reader
        if reader is not None and timeout > 0:
            reader.join(timeout)
        self.host.stop(timeout)
        for thread in (reader, self._writer):
            if thread is not None:
                thread.join(STOP_TIMEOUT_S)

    # -- requests ----------------------------------------------------------------------------

    def submit(self, request: GenerationRequest, stream: RequestStream | None = None) -> RequestStream:
        """Send a request to the core; returns at once. ``stream``: carry on an existing stream
        (a request re-routed from a replica that died before starting it).

        Raises RateLimited (the tenant has too many queued) or Overloaded (the queue is full, or
        the model is stopping), both with ``retry_after``; InvalidRequest when the prompt is
        empty or can never fit; Conflict for a request id already in flight; EngineDeadError
        when the core died.
        """
        if self.dead is not None:
            raise EngineDeadError(self.dead)
        info = self.info
        spec = request.spec
        tenant = request.cls.tenant
        request.check_fits(info.n_ctx)
        if request.request_id in self._streams:
            raise Conflict(f"request {request.request_id!r} is already in flight", param="request_id")
        counts = self._counts
        unseen = len(self._unseen)
        queued_tenant = sum(1 for _, t in self._unseen if t == tenant) + next(
            (c.queued for c in counts.tenants if c.tenant == tenant), 0
        )
        try:
            self.admission.check(
                tenant, counts.queued + unseen, queued_tenant, accepting=self._accepting and not self._closing
            )
        except (RateLimited, Overloaded) as exc:
            self.rejected += 1
            if self._on_event is not None:
                self._on_event(SchedulerEvent("reject", request.request_id, tenant, self._clock(), exc.code))
            raise
        ahead = counts.queued + unseen
        free = info.n_slots - counts.running
        est = 0.0 if ahead < free else self._drain_time(ahead - free + 1)
        if stream is None:
            stream = RequestStream(
                request.request_id, tenant, self.abort, position=ahead, estimated_start=est, clock=self._clock
            )
        else:
            stream.rebind(self.abort)
            stream.placed(ahead, est)
        seqno = next(self._seqnos)
        deadline = request.cls.deadline
        self._streams[request.request_id] = stream
        cost = len(spec.prompt) + spec.params.max_tokens
        self._costs[request.request_id] = cost
        self.outstanding_tokens += cost
        self._unstarted[request.request_id] = request
        self._unseen.append((seqno, tenant))
        if self._idle is not None:
            self._idle.clear()
        self._send(
            AddRequest(
                seqno=seqno,
                request_id=request.request_id,
                spec=spec,
                tenant=tenant,
                urgency=request.cls.urgency,
                deadline_s=None if deadline is None else deadline - self._clock(),
            )
        )
        return stream

    def abort(self, request_id: str) -> None:
        """Drop a request (it ends with ``finish_reason="abort"``); unknown ids are ignored."""
        if self.dead is None and not self._closing:
            self._send(AbortRequests((request_id,)))

    def set_tenant_weights(self, weights: Mapping[TenantId, float]) -> None:
        """The fair-share weights by tenant, for the core's policy (from the next step)."""
        if self.dead is None and not self._closing:
            self._send(SetTenantWeights(dict(weights)))

    def set_policy(self, name: str) -> None:
        """Schedule with the policy ``name`` from the next step. Raises InvalidRequest for an
        unknown name."""
        if name not in POLICY_NAMES:
            raise InvalidRequest(f"unknown scheduling policy {name!r}; expected one of {POLICY_NAMES}")
        self._send(SetPolicy(name))

    @property
    def in_flight(self) -> int:
        """Requests submitted and not yet finished."""
        return len(self._streams)

    @property
    def counts(self) -> SchedulerCounts:
        """Requests queued and running per tenant, as of the core's last step (cheap, no call)."""
        return self._counts

    @property
    def running(self) -> int:
        return self._counts.running

    @property
    def queued(self) -> int:
        return self._counts.queued + len(self._unseen)

    # -- calls -------------------------------------------------------------------------------

    async def render_prompt(
        self, messages: Sequence[ChatMessage], *, tools: Sequence[Mapping[str, Any]] | None = None
    ) -> list[TokenId]:
        """The chat ``messages`` rendered with the model's template and tokenized (answered by
        the core's frontend thread, never behind a decode step)."""
        reply = await self._call(
            lambda cid: RenderPrompt(cid, tuple(messages), None if tools is None else tuple(tools)),
            TokensReply,
        )
        return list(reply.tokens[0])

    async def tokenize(
        self, texts: Sequence[str], *, add_special: bool = True, parse_special: bool = False
    ) -> list[list[TokenId]]:
        reply = await self._call(
            lambda cid: Tokenize(cid, tuple(texts), add_special, parse_special), TokensReply
        )
        return [list(t) for t in reply.tokens]

    async def embed(
        self, inputs: Sequence[Sequence[TokenId]], *, normalize: bool = True
    ) -> list[list[float]]:
        """Vectors for token lists (the core embeds them between two steps)."""
        reply = await self._call(
            lambda cid: Embed(cid, tuple(tuple(x) for x in inputs), normalize), EmbedReply
        )
        return [list(v) for v in reply.vectors]

    async def stats(self) -> SchedulerStats:
        """The scheduler's state now (queues, tenants, requests, the queueing model); the core
        answers between two steps."""
        reply = await self._call(GetStats, StatsReply)
        self.last_stats = dataclasses.replace(reply.stats, rejected=self.rejected)
        return self.last_stats

    async def health(self) -> EngineHealth:
        if self.dead is not None or self._info is None:
            return EngineHealth(ok=False, detail=self.dead or "not started", pid=self._pid or 0)
        try:
            return (await self._call(GetHealth, HealthReply)).health
        except EngineDeadError as exc:
            return EngineHealth(ok=False, detail=exc.message, pid=self._pid or 0)

    async def sequences(self) -> list[SeqStatus]:
        """The sequences holding the engine's slots."""
        return list((await self._call(GetSequences, SequencesReply)).sequences)

    async def _call(self, make: Callable[[int], Any], expect: type[R]) -> R:
        if self.dead is not None:
            raise EngineDeadError(self.dead)
        if self._loop is None or self._closing:
            raise EngineDeadError(f"the engine core of {self.model} is not running")
        call_id = next(self._call_ids)
        future: asyncio.Future[Any] = self._loop.create_future()
        self._calls[call_id] = future
        try:
            self._send(make(call_id))
            reply = await future
        finally:
            self._calls.pop(call_id, None)
        if isinstance(reply, CallFailed):
            raise reply.error.to_error()
        if not isinstance(reply, expect):
            raise EngineError(f"the engine core answered {type(reply).__name__}, not {expect.__name__}")
        return reply

    # -- the threads -------------------------------------------------------------------------

    def _send(self, msg: Any) -> None:
        self._outbox.put(msg)

    def _write(self, channel: Channel) -> None:
        while True:
            msg = self._outbox.get()
            if msg is None:
                return
            try:
                channel.send(msg)
            except EOFError:
                return

    def _post(self, fn: Callable[..., None], *args: Any) -> None:
        loop = self._loop
        if loop is None:
            return
        with contextlib.suppress(RuntimeError):  # the loop is closed: nobody listens any more
            loop.call_soon_threadsafe(fn, *args)

    def _read(self) -> None:
        try:
            channel = self.host.start()
            channel.send(self.spec)
            first = channel.recv()
        except Exception as exc:
            detail = self.host.exit_detail()
            self._post(
                self._failed_start, EngineDeadError(f"the engine core could not start: {exc} {detail}")
            )
            return
        if not isinstance(first, CoreReady):
            error: LLMOSError = (
                first.error.to_error()
                if isinstance(first, CoreDead) and first.error is not None
                else EngineDeadError(getattr(first, "reason", f"unexpected {type(first).__name__}"))
            )
            channel.close()
            self._post(self._failed_start, error)
            return
        self._pid = first.pid
        self._writer = threading.Thread(
            target=self._write, args=(channel,), name=f"llmos-core-writer:{self.model}", daemon=True
        )
        self._writer.start()
        if isinstance(channel, PipeChannel):
            # the loop reads the pipe itself; this thread waits for the end and reports it
            channel.nonblocking()
            self._post(self._attach, channel)
            self._post(self._started, first.info)
            self._gone.wait()
            reason = self._gone_reason
        else:
            self._post(self._started, first.info)
            reason = self._receive(channel)
        channel.close()
        self._outbox.put(None)
        if self._closing and not reason:
            return
        detail = self.host.exit_detail()
        why = f"the engine core of {self.model} (pid {self._pid}) died" + (
            f": {reason}" if reason else f" ({detail})" if detail else ""
        )
        self._post(self._on_gone, why)

    def _receive(self, channel: Channel) -> str:
        """Hand what the core sends to the loop until it ends; returns the reason it gave."""
        while True:
            try:
                msg = channel.recv()
            except EOFError:
                return ""
            if isinstance(msg, StepOutputs):
                self._post(self._on_outputs, msg)
            elif isinstance(msg, CoreDead):
                return msg.reason
            else:
                self._post(self._on_reply, msg)

    # -- on the event loop -------------------------------------------------------------------

    def _attach(self, channel: PipeChannel) -> None:
        assert self._loop is not None
        try:
            self._loop.add_reader(channel.fileno(), self._readable, channel)
        except Exception:  # the loop cannot watch it: end as if the pipe had closed
            logger.warning("the event loop cannot watch the engine core's pipe", exc_info=True)
            self._detach(channel, "", watched=False)

    def _readable(self, channel: PipeChannel) -> None:
        try:
            messages = channel.read_ready()
        except EOFError:
            self._detach(channel, "")
            return
        for msg in messages:
            if isinstance(msg, CoreDead):
                self._detach(channel, msg.reason)
                return
            try:  # one batch may hold several messages: a failure must not drop the rest
                if isinstance(msg, StepOutputs):
                    self._on_outputs(msg)
                else:
                    self._on_reply(msg)
            except Exception:
                logger.exception("handling %s from the engine core failed", type(msg).__name__)

    def _detach(self, channel: PipeChannel, reason: str, *, watched: bool = True) -> None:
        if watched and self._loop is not None:
            self._loop.remove_reader(channel.fileno())
        self._gone_reason = reason
        self._gone.set()

    def _started(self, info: EngineInfo) -> None:
        if self._ready is not None and not self._ready.done():
            self._ready.set_result(info)

    def _failed_start(self, error: BaseException) -> None:
        if self._ready is not None and not self._ready.done():
            self._ready.set_exception(error)

    def _on_outputs(self, batch: StepOutputs) -> None:
        self._counts = batch.counts
        unseen = self._unseen
        while unseen and unseen[0][0] <= batch.added:
            unseen.popleft()
        streams = self._streams
        for event in batch.events:
            if self._on_event is not None:
                self._on_event(event)
            if event.kind in ("admit", "restore"):
                self._unstarted.pop(event.request_id, None)
                s = streams.get(event.request_id)
                if s is not None:
                    s.placed(None, 0.0)
        if batch.positions is not None:
            for p in batch.positions:
                s = streams.get(p.request_id)
                if s is not None:
                    s.placed(p.position, p.estimated_start_s)
        for rid, out in batch.outputs:
            s = streams.get(rid)
            self._unstarted.pop(rid, None)
            if s is not None and s.push(out):
                self._forget(rid)
        for rid, info in batch.failed:
            s = streams.get(rid)
            if s is None:
                continue
            if (
                info.error_type == "EngineDeadError"
                and self.on_orphans is not None
                and rid in self._unstarted
            ):
                continue  # not started: it moves to another replica when the core's death arrives
            s.push(info.to_error())
            self._forget(rid)
        if not streams and self._idle is not None:
            self._idle.set()

    def _forget(self, request_id: str) -> None:
        self._streams.pop(request_id, None)
        self._unstarted.pop(request_id, None)
        self.outstanding_tokens -= self._costs.pop(request_id, 0)

    def _on_reply(self, reply: Any) -> None:
        future = self._calls.get(getattr(reply, "call_id", -1))
        if future is not None and not future.done():
            future.set_result(reply)

    def _on_gone(self, why: str) -> None:
        if self.dead is not None:
            return
        self.dead = why
        logger.error("%s", why)
        if self.on_orphans is not None and self._unstarted:
            orphans = [(r, self._streams[rid]) for rid, r in self._unstarted.items() if rid in self._streams]
            for r, _ in orphans:
                self._forget(r.request_id)
            self._unseen.clear()
            self.on_orphans(orphans)
        self._fail_all(EngineDeadError(why))
        if self._on_dead is not None:
            self._on_dead(why)

    def _fail_all(self, error: EngineDeadError) -> None:
        for stream in list(self._streams.values()):
            stream.push(EngineDeadError(error.message))
        self._streams.clear()
        self._costs.clear()
        self._unstarted.clear()
        self.outstanding_tokens = 0
        self._unseen.clear()
        for future in list(self._calls.values()):
            if not future.done():
                future.set_exception(EngineDeadError(error.message))
        if self._idle is not None:
            self._idle.set()

    def _drain_time(self, departures: int) -> float:
        slots = self._info.n_slots if self._info is not None else 1
        return max(0, departures) * self._counts.expected_service_s / max(1, slots)
