"""A model served by several engine cores (cluster mode): the router, the supervisor, the autoscaler.

:class:`ReplicaSet` stands where a single :class:`~llmos.core.CoreClient` stands for a resident
model, with the same face to the kernel (submit, render, tokenize, embed, stats, health, drain,
close), over replicas that are each a CoreClient on their own host (a Ray actor placed by Ray).

* **Routing.** :meth:`ReplicaSet.submit` asks the :class:`~llmos.cluster.PrefixRouter` for the
  replica holding the longest cached start of the prompt, unless that one's outstanding tokens
  exceed the bounded imbalance; a replica that refuses at admission (its queue is full) hands the
  request to the next least loaded. Admission by tenant, rate limits and budgets happened once,
  in the front-end, before the request got here: they hold for the cluster as a whole.
* **Failures.** When a replica's actor or node dies, its requests that had not started go to the
  other replicas on the same streams; those that had started end with EngineDeadError (the
  server writes usage for what was delivered). The replica is replaced at once if a node has
  room (asked again for up to ``room_wait_s``: Ray shows a dead actor's resources free a moment
  after its death is known), else by the supervisor as soon as one has. Only when every replica is gone is the model
  dead to the kernel (which then unloads it, so the next request loads it afresh).
* **Scaling.** :meth:`scale` sets the count (an operator's ``llmos scale``); with an
  :class:`~llmos.cluster.Autoscaler` the supervisor, every ``interval_s``, feeds it the load the
  replicas measure and applies its decision. Every start, death and decision is a resource event.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import itertools
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from llmos.cluster.autoscaler import Autoscaler, ModelLoad, ScaleDecision, replica_rates
from llmos.cluster.router import PrefixRouter
from llmos.core import CoreClient, RequestStream
from llmos.engine.base import EngineHealth, EngineInfo, SeqStatus
from llmos.errors import EngineDeadError, InvalidRequest, LLMOSError, Overloaded, RateLimited
from llmos.resources.residency_events import EventKind, EventLog, ResourceEvent
from llmos.scheduler.request import GenerationRequest
from llmos.scheduler.stats import SchedulerCounts, SchedulerStats, TenantStats
from llmos.types import ChatMessage, TenantId, TokenId

log = logging.getLogger(__name__)

MAX_REPLICAS = 1024


@dataclass
class Replica:
    name: str
    core: CoreClient
    started_at: float
    draining: bool = False

    @property
    def node_id(self) -> str | None:
        return getattr(self.core.host, "node_id", None)

    @property
    def serving(self) -> bool:
        return self.core.alive and not self.draining


@dataclass(frozen=True)
class ReplicaView:
    """One replica as ``/api/cluster`` shows it."""

    name: str
    node_id: str | None
    pid: int | None
    state: str
    running: int
    queued: int
    outstanding_tokens: int
    started_at: float


class ReplicaSet:
    """See the module docstring. ``make_core(name)`` builds (does not start) one replica's client;
    ``has_room()`` says whether some node could place one more replica now; ``room_wait_s``: how
    long the replacement of a dead replica keeps asking it before leaving the job to the supervisor."""

    def __init__(
        self,
        model: str,
        make_core: Callable[[str], CoreClient],
        *,
        router: PrefixRouter | None = None,
        autoscaler: Autoscaler | None = None,
        min_replicas: int = 1,
        has_room: Callable[[], Awaitable[bool]] | None = None,
        events: EventLog | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
        interval_s: float = 2.0,
        room_wait_s: float = 2.0,
        on_dead: Callable[[str], None] | None = None,
    ) -> None:
        self.model = model
        self._make_core = make_core
        self.router = router or PrefixRouter()
        self.autoscaler = autoscaler
        self.min_replicas = max(1, min_replicas)
        self._has_room = has_room
        self.events = events if events is not None else EventLog()
        self._clock = clock
        self._wall = wall_clock
        self._interval = interval_s
        self._room_wait_s = room_wait_s
        self._on_dead = on_dead
        self._names = itertools.count(1)
        self.replicas: dict[str, Replica] = {}
        self._info: EngineInfo | None = None
        self._supervisor: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._scaling = asyncio.Lock()
        self._closing = False
        self.dead: str | None = None
        self.last_stats: SchedulerStats | None = None
        self.host = None  # a set has no single host (the kernel's ps shows the first replica's pid)

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self, replicas: int | None = None) -> EngineInfo:
        """Start ``replicas`` (default: the minimum) and the supervisor. At least one must start:
        raises what the first failure raised when none did."""
        want = max(1, replicas or self.min_replicas)
        results = await asyncio.gather(*(self._add("started") for _ in range(want)), return_exceptions=True)
        errors = [r for r in results if isinstance(r, BaseException)]
        if not self.replicas:
            raise errors[0] if errors else EngineDeadError(f"no replica of {self.model} started")
        self._supervisor = asyncio.get_running_loop().create_task(
            self._supervise(), name=f"llmos-replicas-{self.model}"
        )
        return self.info

    @property
    def info(self) -> EngineInfo:
        if self._info is None:
            raise EngineDeadError(f"no replica of {self.model} is running")
        return self._info

    @property
    def alive(self) -> bool:
        return self.dead is None and not self._closing and any(r.serving for r in self.replicas.values())

    @property
    def pid(self) -> int | None:
        first = next(iter(self.replicas.values()), None)
        return first.core.pid if first else None

    async def drain(self, grace_s: float) -> None:
        await asyncio.gather(*(r.core.drain(grace_s) for r in list(self.replicas.values())))

    async def close(self, drain_timeout: float = 0.0) -> None:
        if self._closing:
            return
        self._closing = True
        if self._supervisor is not None:
            self._supervisor.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._supervisor
        for task in list(self._tasks):
            task.cancel()
        replicas = list(self.replicas.values())
        self.replicas.clear()
        await asyncio.gather(*(r.core.close(drain_timeout) for r in replicas), return_exceptions=True)

    # -- requests ----------------------------------------------------------------------------

    def submit(self, request: GenerationRequest, stream: RequestStream | None = None) -> RequestStream:
        """Route the request to a replica (see the module docstring); raises what the last replica
        tried raised (Overloaded, RateLimited...), EngineDeadError when none serves."""
        serving = self._serving()
        if not serving:
            raise EngineDeadError(self.dead or f"no replica of {self.model} is serving; retry shortly")
        loads = {r.name: r.core.outstanding_tokens for r in serving}
        first = self.router.route(request.spec.prompt, loads).replica
        order = [first, *sorted((n for n in loads if n != first), key=lambda n: (loads[n], n))]
        error: LLMOSError | None = None
        for name in order:
            try:
                return self.replicas[name].core.submit(request, stream)
            except (Overloaded, RateLimited) as exc:
                error = exc
        if error is None:  # unreachable: ``order`` is never empty
            raise EngineDeadError(f"no replica of {self.model} is serving")
        raise error

    def abort(self, request_id: str) -> None:
        for r in self.replicas.values():
            r.core.abort(request_id)

    def set_tenant_weights(self, weights: Mapping[TenantId, float]) -> None:
        for r in self.replicas.values():
            r.core.set_tenant_weights(weights)

    def set_policy(self, name: str) -> None:
        for r in self.replicas.values():
            r.core.set_policy(name)

    @property
    def running(self) -> int:
        return sum(r.core.running for r in self.replicas.values())

    @property
    def queued(self) -> int:
        return sum(r.core.queued for r in self.replicas.values())

    @property
    def in_flight(self) -> int:
        return sum(r.core.in_flight for r in self.replicas.values())

    @property
    def counts(self) -> SchedulerCounts:
        cores = [r.core.counts for r in self.replicas.values()]
        return SchedulerCounts(
            running=sum(c.running for c in cores),
            queued=sum(c.queued for c in cores),
            tenants=tuple(t for c in cores for t in c.tenants),
            expected_service_s=max((c.expected_service_s for c in cores), default=1.0),
        )

    # -- calls (any serving replica: the least loaded) ------------------------------------------

    def _any(self) -> CoreClient:
        serving = self._serving()
        if not serving:
            raise EngineDeadError(self.dead or f"no replica of {self.model} is serving; retry shortly")
        return min(serving, key=lambda r: r.core.outstanding_tokens).core

    async def render_prompt(
        self, messages: Sequence[ChatMessage], *, tools: Sequence[Mapping[str, Any]] | None = None
    ) -> list[TokenId]:
        return await self._any().render_prompt(messages, tools=tools)

    async def tokenize(
        self, texts: Sequence[str], *, add_special: bool = True, parse_special: bool = False
    ) -> list[list[TokenId]]:
        return await self._any().tokenize(texts, add_special=add_special, parse_special=parse_special)

    async def embed(
        self, inputs: Sequence[Sequence[TokenId]], *, normalize: bool = True
    ) -> list[list[float]]:
        return await self._any().embed(inputs, normalize=normalize)

    async def sequences(self) -> list[SeqStatus]:
        out: list[SeqStatus] = []
        for r in list(self.replicas.values()):
            if r.core.alive:
                out.extend(await r.core.sequences())
        return out

    async def replica_stats(self) -> dict[str, SchedulerStats]:
        """Each serving replica's scheduler stats (a replica that cannot answer is left out)."""
        serving = self._serving()
        answers = await asyncio.gather(*(r.core.stats() for r in serving), return_exceptions=True)
        return {r.name: a for r, a in zip(serving, answers, strict=True) if isinstance(a, SchedulerStats)}

    async def stats(self) -> SchedulerStats:
        """The replicas' scheduler stats summed into one (the model as a whole)."""
        per = await self.replica_stats()
        if not per:
            raise EngineDeadError(self.dead or f"no replica of {self.model} answered")
        self.last_stats = merge_stats(self.model, list(per.values()))
        return self.last_stats

    async def health(self) -> EngineHealth:
        serving = self._serving()
        if not serving:
            return EngineHealth(ok=False, detail=self.dead or "no replica serving")
        answers = await asyncio.gather(*(r.core.health() for r in serving))
        return EngineHealth(
            ok=any(h.ok for h in answers),
            detail=f"{sum(h.ok for h in answers)}/{len(self.replicas)} replicas healthy",
            slots_used=sum(h.slots_used for h in answers),
            slots_total=sum(h.slots_total for h in answers),
            kv_used=sum(h.kv_used for h in answers),
            kv_total=sum(h.kv_total for h in answers),
            rss_bytes=max((h.rss_bytes for h in answers), default=0),
            pid=answers[0].pid,
        )

    def views(self) -> list[ReplicaView]:
        return [
            ReplicaView(
                name=r.name,
                node_id=r.node_id,
                pid=r.core.pid,
                state="draining" if r.draining else "serving" if r.core.alive else "dead",
                running=r.core.running,
                queued=r.core.queued,
                outstanding_tokens=r.core.outstanding_tokens,
                started_at=r.started_at,
            )
            for r in self.replicas.values()
        ]

    # -- scaling -----------------------------------------------------------------------------

    async def scale(self, replicas: int, *, reason: str = "set by an operator") -> int:
        """Start or stop replicas until ``replicas`` serve; returns how many serve now. Raises
        InvalidRequest outside 1 … 1024; what starting raised when no node has room."""
        if not 1 <= replicas <= MAX_REPLICAS:
            raise InvalidRequest(f"replicas must be between 1 and {MAX_REPLICAS}", param="replicas")
        async with self._scaling:
            self.min_replicas = (
                replicas if self.autoscaler is None else max(replicas, self.autoscaler.min_replicas)
            )
            while len(self._serving()) < replicas:
                await self._add(reason, kind="scale_up")
            while len(self._serving()) > replicas:
                await self._remove(reason)
        return len(self._serving())

    async def _add(self, reason: str, *, kind: EventKind = "replica_started") -> Replica:
        name = f"{self.model}#{next(self._names)}"
        core = self._make_core(name)
        try:
            info = await core.start()
        except BaseException as exc:
            self._record("replica_failed", f"{name} could not start: {exc}")
            raise
        replica = Replica(name, core, self._wall())
        core.on_orphans = self._reroute
        self.replicas[name] = replica
        if self._info is None:
            self._info = info
        where = f" on node {replica.node_id[:12]}" if replica.node_id else ""
        self._record(kind, f"{name}{where}: {reason}")
        return replica

    async def _remove(self, reason: str) -> None:
        serving = self._serving()
        victim = min(serving, key=lambda r: (r.core.outstanding_tokens, r.name))
        victim.draining = True
        self.router.forget(victim.name)
        self._record("scale_down", f"{victim.name}: {reason}")
        await victim.core.close(30.0)
        self.replicas.pop(victim.name, None)

    def replica_died(self, name: str, why: str) -> None:
        """A replica's core died (its started requests have failed, its unstarted ones moved)."""
        replica = self.replicas.pop(name, None)
        if replica is None or self._closing:
            return
        self.router.forget(name)
        self._record("replica_died", f"{name}: {why}")
        if not self._serving():
            self.dead = f"every replica of {self.model} died; the last: {why}"
            if self._on_dead is not None:
                self._on_dead(self.dead)
            return
        self._spawn(self._restore(f"replaces {name}, which died", room_wait_s=self._room_wait_s))

    async def _restore(self, reason: str, *, room_wait_s: float = 0.0) -> None:
        async with self._scaling:
            if len(self._serving()) >= self.min_replicas or self._closing:
                return
            if not await self._room_within(room_wait_s):
                self._record(
                    "replica_failed", f"no node has room for a replica: {reason}; retried when one has"
                )
                return
            with contextlib.suppress(LLMOSError):
                await self._add(reason)

    async def _room_within(self, within_s: float) -> bool:
        """Whether ``has_room()`` says yes within ``within_s`` (asked every 0.1 s)."""
        if self._has_room is None:
            return True
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within_s
        while not await self._has_room():
            if loop.time() >= deadline or self._closing:
                return False
            await asyncio.sleep(0.1)
        return True

    def _reroute(self, orphans: list[tuple[GenerationRequest, RequestStream]]) -> None:
        for request, stream in orphans:
            try:
                self.submit(request, stream)
            except LLMOSError as exc:
                stream.push(exc)

    def _serving(self) -> list[Replica]:
        return [r for r in self.replicas.values() if r.serving]

    async def load(self) -> ModelLoad:
        """The model's load as its replicas measure it, for the autoscaler."""
        per = list((await self.replica_stats()).values())
        rates: tuple[float, ...] = ()
        scv = 1.0
        for s in per:
            q = s.queue_model
            rates = replica_rates(q.step_time_s, q.steps_per_request)
            if rates:
                scv = q.steps_scv
                break
        return ModelLoad(
            arrival_rate=sum(s.queue_model.arrival_rate for s in per),
            rates=rates,
            scv=scv,
            queued=sum(s.queued for s in per),
        )

    async def autoscale_once(self) -> ScaleDecision | None:
        """One look by the supervisor: restore the minimum, then ask the autoscaler."""
        if self._closing:
            return None
        n = len(self._serving())
        if n < self.min_replicas:
            await self._restore("below the minimum replicas")
            return None
        if self.autoscaler is None:
            return None
        room = True if self._has_room is None else await self._has_room()
        decision = self.autoscaler.decide(self.model, n, await self.load(), has_room=room)
        if decision is not None:
            async with self._scaling:
                if decision.action == "up":
                    adds = [self._add(decision.reason, kind="scale_up") for _ in range(decision.replicas - n)]
                    await asyncio.gather(*adds, return_exceptions=True)  # failures are events
                else:
                    await self._remove(decision.reason)
        return decision

    async def _supervise(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            try:
                await self.autoscale_once()
            except Exception:
                log.exception("the supervisor of %s failed one round", self.model)

    def _spawn(self, coro: Awaitable[None]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _record(self, kind: EventKind, reason: str) -> None:
        self.events.record(ResourceEvent(at=self._wall(), kind=kind, model=self.model, reason=reason))


def merge_stats(model: str, per: Sequence[SchedulerStats]) -> SchedulerStats:
    """Several replicas' stats as one model's: counts summed, tenants merged, requests listed."""
    first = per[0]
    tenants: dict[str, TenantStats] = {}
    for s in per:
        for t in s.tenants:
            old = tenants.get(t.tenant)
            tenants[t.tenant] = (
                t
                if old is None
                else TenantStats(
                    t.tenant,
                    old.queued + t.queued,
                    old.running + t.running,
                    old.prompt_tokens + t.prompt_tokens,
                    old.output_tokens + t.output_tokens,
                )
            )
    qm = dataclasses.replace(
        first.queue_model,
        arrival_rate=sum(s.queue_model.arrival_rate for s in per),
        arrivals=sum(s.queue_model.arrivals for s in per),
        services=sum(s.queue_model.services for s in per),
        waits=sum(s.queue_model.waits for s in per),
    )

    def total(field: str) -> int:
        return sum(int(getattr(s, field)) for s in per)

    return dataclasses.replace(
        first,
        model=model,
        accepting=any(s.accepting for s in per),
        slots=total("slots"),
        running=total("running"),
        queued=total("queued"),
        submitted=total("submitted"),
        completed=total("completed"),
        preemptions=total("preemptions"),
        timeouts=total("timeouts"),
        cancelled=total("cancelled"),
        failed=total("failed"),
        rejected=total("rejected"),
        steps=total("steps"),
        tenants=tuple(tenants.values()),
        requests=tuple(r for s in per for r in s.requests),
        queue_model=qm,
    )
