"""One scheduler per loaded model: queue, admission, slots, preemption, deadlines, the step loop.

The step loop runs in a dedicated thread (the engine is blocking and not thread-safe; only this
thread touches it). Each iteration is *reap → admit → plan → step → deliver*:

1. **reap**: cancelled requests and passed deadlines leave the queue or their slot (``abort``);
2. **admit**: while the policy's next pick fits (``can_admit``), it gets a slot (``admit``, or
   ``restore`` for a preempted one); when it does not fit and the policy names a victim among
   the running requests, the victim is preempted (``preempt``: snapshot, slot freed) and requeued;
3. **plan**: of the running requests the policy lets run this step (it may pause some: they
   keep their slot), decoding sequences get one token each, prefilling ones chunks of the rest
   of the per-step budget (``n_batch``);
4. **step**: one ``engine.step(plan)``, outside the lock so submits and cancels never wait on it;
5. **deliver**: outputs go to each consumer's event loop with ``call_soon_threadsafe``.

With nothing to do the thread sleeps on a condition variable; ``submit``, ``cancel`` and
``wake`` notify it; a pending deadline bounds the sleep. Callers that drive the loop themselves
(tests, benchmarks) skip :meth:`start` and call :meth:`step_once`.

Engine failures: ``EngineDeadError`` from a step fails every running and preempted request with
that error (queued ones stay, to run on a restarted engine, or fail at admission if it is still
dead); any other error from a step fails the requests in that step with ``EngineGenerateError``.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import logging
import threading
import time
from collections.abc import Callable

from llmos.config import SchedulerConfig
from llmos.engine.base import Engine, SeqOutput, SeqSnapshot, StepPlan, StepResult
from llmos.errors import (
    Conflict,
    DeadlineExceeded,
    EngineDeadError,
    EngineError,
    EngineGenerateError,
    InvalidRequest,
    LLMOSError,
    Overloaded,
    RateLimited,
)
from llmos.scheduler.admission import AdmissionControl
from llmos.scheduler.events import EventKind, SchedulerEvent
from llmos.scheduler.handle import RequestHandle
from llmos.scheduler.policies import Policy, make_policy
from llmos.scheduler.queue_model import QueueModel
from llmos.scheduler.request import GenerationRequest
from llmos.scheduler.stats import RequestState, SchedulerStats, TenantStats
from llmos.scheduler.step_planner import plan_tokens
from llmos.scheduler.ticket import Ticket
from llmos.types import SeqId, TenantId

logger = logging.getLogger(__name__)

MAX_IDLE_WAIT_S = 5.0


class ModelScheduler:
    """Schedules every request and every engine step of one loaded model. See the module docstring.

    ``clock`` is a monotonic clock in seconds (deadlines and arrivals are on it); ``on_event`` is
    called under the scheduler's lock for each :class:`SchedulerEvent` and must return quickly.
    """

    def __init__(
        self,
        engine: Engine,
        *,
        model: str = "",
        config: SchedulerConfig | None = None,
        policy: Policy | None = None,
        clock: Callable[[], float] = time.monotonic,
        on_event: Callable[[SchedulerEvent], None] | None = None,
        default_service_s: float = 1.0,
    ) -> None:
        self.config = config or SchedulerConfig()
        self.engine = engine
        self.model = model
        self.policy = policy or make_policy(self.config.policy, self.config)
        self._clock = clock
        self._on_event = on_event
        info = engine.info
        self.n_slots = info.n_slots
        self.n_batch = info.n_batch
        self.n_ctx = info.n_ctx
        self.queue_model = QueueModel(info.n_slots, clock=clock, default_service_s=default_service_s)
        self.admission = AdmissionControl(
            self.config.max_queue, self.config.max_queue_per_tenant, self.queue_model
        )
        self._cv = threading.Condition(threading.Lock())
        self._tickets: dict[str, Ticket] = {}
        self._by_seq: dict[SeqId, Ticket] = {}
        self._waiting: list[Ticket] = []
        self._running: list[Ticket] = []
        self._seqnos = itertools.count()
        self._accepting = True
        self._abort_all = False
        self._kicked = False
        self._stop_thread = False
        self._thread: threading.Thread | None = None
        self._tenant_tokens: dict[TenantId, list[int]] = {}
        self.counts = {
            k: 0
            for k in ("submitted", "completed", "preemptions", "timeouts", "cancelled", "failed", "rejected")
        }
        self.steps = 0

    # -- consumer side (event-loop thread) ---------------------------------------------------

    def submit(self, request: GenerationRequest) -> RequestHandle:
        """Queue a request; call from a coroutine (outputs go to the running event loop).

        Raises RateLimited (tenant over its queue share) or Overloaded (queue full, or stopping),
        both with ``retry_after``; InvalidRequest when the prompt can never fit; Conflict for a
        request or sequence id already in flight.
        """
        loop = asyncio.get_running_loop()
        spec = request.spec
        if not spec.prompt:
            raise InvalidRequest("the prompt is empty", param="prompt")
        if len(spec.prompt) + 1 > self.n_ctx:
            raise InvalidRequest(
                f"the prompt has {len(spec.prompt)} tokens; this model's context holds {self.n_ctx}",
                param="prompt",
            )
        with self._cv:
            now = self._clock()
            if request.request_id in self._tickets or spec.seq_id in self._by_seq:
                raise Conflict(f"request {request.request_id!r} is already in flight", param="request_id")
            tenant = request.cls.tenant
            queued_tenant = sum(1 for t in self._waiting if t.tenant == tenant)
            try:
                self.admission.check(tenant, len(self._waiting), queued_tenant, accepting=self._accepting)
            except (RateLimited, Overloaded) as e:
                self.counts["rejected"] += 1
                self._emit("reject", request.request_id, tenant, now, e.code)
                raise
            ticket = Ticket(
                request=request,
                seqno=next(self._seqnos),
                arrival=request.arrival if request.arrival is not None else now,
                loop=loop,
                outbox=asyncio.Queue(),
            )
            self.policy.on_enqueue(ticket, now, self._active_tenants())
            self._tickets[request.request_id] = ticket
            self._by_seq[spec.seq_id] = ticket
            self._waiting.append(ticket)
            self.queue_model.record_arrival(now)
            self.counts["submitted"] += 1
            self._emit("queue", request.request_id, tenant, now)
            self._refresh_positions(now)
            self._kick()
        return RequestHandle(ticket, self)

    def cancel(self, ticket: Ticket) -> None:
        """Mark a request cancelled; the step thread drops it before its next engine step."""
        with self._cv:
            if not ticket.done:
                ticket.cancelled = True
                self._kick()

    def position_of(self, ticket: Ticket) -> tuple[int | None, float | None]:
        with self._cv:
            if ticket.done:
                return None, None
            if ticket.phase == "running":
                return None, 0.0
            est = None if ticket.est_start_at is None else max(0.0, ticket.est_start_at - self._clock())
            return ticket.position, est

    def wake(self) -> None:
        """Make the step thread look again now (e.g. after an injected clock moved)."""
        with self._cv:
            self._kick()

    @property
    def in_flight(self) -> int:
        """Requests queued or running."""
        with self._cv:
            return len(self._waiting) + len(self._running)

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        """Start the step thread."""
        with self._cv:
            if self._thread is not None:
                return
            self._stop_thread = False
            self._thread = threading.Thread(
                target=self._run, name=f"scheduler:{self.model or 'model'}", daemon=True
            )
            self._thread.start()

    async def stop(self, drain_timeout: float = 30.0) -> None:
        """Stop accepting; let in-flight requests finish within ``drain_timeout``; abort the rest.

        Running requests that are cut off end with ``finish_reason="abort"``; queued ones raise
        Overloaded. Then the step thread exits.
        """
        with self._cv:
            self._accepting = False
            self._kick()
        if self._thread is not None:
            await asyncio.to_thread(self._wait_drained, max(0.0, drain_timeout))
        with self._cv:
            self._abort_all = True
            self._kick()
        if self._thread is None:
            self.step_once()
        else:
            await asyncio.to_thread(self._wait_drained, 10.0)
            with self._cv:
                self._stop_thread = True
                self._kick()
            await asyncio.to_thread(self._thread.join, 10.0)
            self._thread = None

    def _wait_drained(self, timeout: float) -> bool:
        with self._cv:
            return self._cv.wait_for(lambda: not self._waiting and not self._running, timeout=timeout)

    # -- the step loop -----------------------------------------------------------------------

    def _run(self) -> None:
        while True:
            try:
                progressed = self.step_once()
            except Exception as e:  # a bug here must neither kill the thread nor hang consumers
                logger.exception("scheduler step failed for model %s", self.model)
                with self._cv:
                    self._fail_everything(e)
                progressed = False
            with self._cv:
                if self._stop_thread:
                    return
                if not progressed and not self._kicked:
                    self._cv.wait(timeout=self._idle_timeout())
                self._kicked = False

    def step_once(self) -> bool:
        """Run one iteration (reap, admit, plan, step, deliver). True if anything happened."""
        with self._cv:
            now = self._clock()
            try:
                changed = self._reap(now)
                changed |= self._admit(now)
            except EngineDeadError as e:
                self._fail_in_flight(e, include_queued=True)
                return True
            runnable = self.policy.runnable(self._running, now)
            plan = plan_tokens([(t.seq_id, t.prefill_remaining) for t in runnable], self.n_batch)
            self._refresh_positions(now)
        if not plan:
            return changed
        try:
            result = self.engine.step(StepPlan(tokens=plan))
        except EngineDeadError as e:
            logger.error("engine of model %s died: %s", self.model, e)
            with self._cv:
                self._fail_in_flight(e, include_queued=False)
            return True
        except Exception as e:
            logger.exception("engine step failed for model %s", self.model)
            with self._cv:
                self._fail_planned(plan, e)
            return True
        with self._cv:
            self._absorb(plan, result)
            self._refresh_positions(self._clock())
        return True

    def _reap(self, now: float) -> bool:
        changed = False
        for t in list(self._running):
            if t.cancelled or self._abort_all or (t.deadline is not None and t.deadline <= now):
                self.engine.abort(t.seq_id)
                self._leave_slot(t, now)
                if t.cancelled or self._abort_all:
                    self._finish(
                        t,
                        now,
                        "cancel",
                        SeqOutput(
                            seq_id=t.seq_id, finish_reason="abort", completion_tokens=t.completion_tokens
                        ),
                    )
                else:
                    self._finish(
                        t,
                        now,
                        "timeout",
                        SeqOutput(
                            seq_id=t.seq_id, finish_reason="timeout", completion_tokens=t.completion_tokens
                        ),
                    )
                changed = True
        for t in list(self._waiting):
            if t.cancelled:
                self._finish(
                    t,
                    now,
                    "cancel",
                    SeqOutput(seq_id=t.seq_id, finish_reason="abort", completion_tokens=t.completion_tokens),
                )
            elif self._abort_all:
                self._finish(t, now, "cancel", Overloaded("the model is shutting down", retry_after=5.0))
            elif t.deadline is not None and t.deadline <= now:
                out: SeqOutput | BaseException = (
                    SeqOutput(seq_id=t.seq_id, finish_reason="timeout", completion_tokens=t.completion_tokens)
                    if t.produced
                    else DeadlineExceeded(f"request {t.request_id!r} passed its deadline while queued")
                )
                self._finish(t, now, "timeout", out)
            else:
                continue
            changed = True
        return changed

    def _admit(self, now: float) -> bool:
        changed = False
        # Bounded: a policy whose victim choice disagrees with its own order must not spin here.
        for _ in range(2 * (self.n_slots + len(self._waiting))):
            if not self._waiting or self._abort_all:
                break
            cand = self.policy.pick(self._waiting, now)
            if self.engine.can_admit(cand.kv_need):
                self._start(cand, now)
                changed = True
                continue
            victim = self.policy.victim(cand, self._running, now) if self._running else None
            if victim is None:
                break
            self._preempt(victim, now)
            changed = True
        return changed

    def _start(self, t: Ticket, now: float) -> None:
        self._waiting.remove(t)
        try:
            if t.snapshot is not None:
                self.engine.restore(t.snapshot)
                t.snapshot = None
                kind: EventKind = "restore"
            else:
                adm = self.engine.admit(t.request.spec)
                t.cached_tokens = adm.cached_tokens
                t.prefill_remaining = len(t.request.spec.prompt) - adm.cached_tokens
                kind = "admit"
        except EngineDeadError:
            self._waiting.append(t)
            raise
        except EngineError as e:
            self._finish(t, now, "fail", EngineGenerateError(f"the engine refused the request: {e}"))
            return
        except LLMOSError as e:  # e.g. InvalidRequest: a token outside the vocabulary
            self._finish(t, now, "fail", e)
            return
        if t.first_admitted_at is None:
            t.first_admitted_at = now
            self.queue_model.record_wait(now - t.arrival)
        t.phase = "running"
        t.slot_since = now
        t.position = None
        self._running.append(t)
        self.policy.on_admit(t, now)
        self._emit(kind, t.request_id, t.tenant, now)

    def _preempt(self, t: Ticket, now: float) -> None:
        self._requeue(t, self.engine.preempt(t.seq_id), now, "policy")

    def _requeue(self, t: Ticket, snapshot: SeqSnapshot, now: float, why: str) -> None:
        t.snapshot = snapshot
        self._leave_slot(t, now)
        t.phase = "preempted"
        self.policy.on_enqueue(t, now, self._active_tenants())
        self._waiting.append(t)
        self.counts["preemptions"] += 1
        self._emit("preempt", t.request_id, t.tenant, now, why)

    def _leave_slot(self, t: Ticket, now: float) -> None:
        self._running.remove(t)
        t.service_s += now - t.slot_since

    def _absorb(self, plan: dict[SeqId, int], result: StepResult) -> None:
        now = self._clock()
        self.steps += 1
        kicked_out = {snap.spec.seq_id for snap in result.preempted}
        for snap in result.preempted:  # the engine ran out of KV cells and preempted on its own
            t = self._by_seq.get(snap.spec.seq_id)
            if t is not None and t.phase == "running":
                self._requeue(t, snap, now, "engine")
        # Prefill progress follows the plan: engines report nothing for a chunk that samples nothing.
        prompt_fed: dict[SeqId, int] = {}
        for sid, n in plan.items():
            t = self._by_seq.get(sid)
            if t is not None and t.phase == "running" and sid not in kicked_out:
                fed = min(n, t.prefill_remaining)
                t.prefill_remaining -= fed
                prompt_fed[sid] = fed
        by_seq = {out.seq_id: out for out in result.outputs}
        for sid in set(prompt_fed) | set(by_seq):
            t = self._by_seq.get(sid)
            if t is None or t.phase != "running":
                continue
            out = by_seq.get(sid)
            generated = len(out.token_ids) if out is not None else 0
            served = self._tenant_tokens.setdefault(t.tenant, [0, 0])
            served[0] += prompt_fed.get(sid, 0)
            served[1] += generated
            self.policy.on_tokens(t.tenant, prompt_fed.get(sid, 0), generated)
            if out is None:
                continue
            t.completion_tokens = out.completion_tokens
            if out.finish_reason == "error":
                self._leave_slot(t, now)
                self._finish(
                    t, now, "fail", EngineGenerateError(out.error or "the engine failed this request")
                )
            elif out.finish_reason is not None:
                self._leave_slot(t, now)
                self.queue_model.record_service(t.service_s)
                self._finish(t, now, "finish", out)
            elif generated or out.text or out.logprobs:
                t.produced = True
                t.deliver(out)

    def _finish(self, t: Ticket, now: float, kind: EventKind, item: SeqOutput | BaseException) -> None:
        if t in self._waiting:
            self._waiting.remove(t)
        t.phase = "done"
        t.done = True
        self._cv.notify_all()
        t.snapshot = None
        self._tickets.pop(t.request_id, None)
        self._by_seq.pop(t.seq_id, None)
        counter = {"finish": "completed", "timeout": "timeouts", "cancel": "cancelled", "fail": "failed"}.get(
            kind
        )
        if counter:
            self.counts[counter] += 1
        self._emit(
            kind, t.request_id, t.tenant, now, getattr(item, "finish_reason", None) or type(item).__name__
        )
        t.deliver(item)

    def _fail_in_flight(self, error: EngineDeadError, *, include_queued: bool) -> None:
        now = self._clock()
        for t in list(self._running):
            self._leave_slot(t, now)
            self._finish(t, now, "fail", EngineDeadError(error.message))
        for t in list(self._waiting):
            if include_queued or t.snapshot is not None:
                self._finish(t, now, "fail", EngineDeadError(error.message))

    def _fail_everything(self, error: Exception) -> None:
        now = self._clock()
        for t in list(self._running):
            with contextlib.suppress(Exception):
                self.engine.abort(t.seq_id)
            self._leave_slot(t, now)
            self._finish(t, now, "fail", EngineGenerateError(f"scheduler failure: {error}"))
        for t in list(self._waiting):
            self._finish(t, now, "fail", EngineGenerateError(f"scheduler failure: {error}"))

    def _fail_planned(self, plan: dict[SeqId, int], error: Exception) -> None:
        now = self._clock()
        for sid in plan:
            t = self._by_seq.get(sid)
            if t is not None and t.phase == "running":
                self.engine.abort(sid)
                self._leave_slot(t, now)
                self._finish(t, now, "fail", EngineGenerateError(f"engine step failed: {error}"))

    # -- helpers (caller holds the lock) -----------------------------------------------------

    def _kick(self) -> None:
        self._kicked = True
        self._cv.notify_all()

    def _active_tenants(self) -> set[TenantId]:
        return {t.tenant for t in self._waiting} | {t.tenant for t in self._running}

    def _idle_timeout(self) -> float | None:
        deadlines = [t.deadline for t in self._tickets.values() if t.deadline is not None]
        if not deadlines:
            return None
        return min(MAX_IDLE_WAIT_S, max(0.001, min(deadlines) - self._clock()))

    def _refresh_positions(self, now: float) -> None:
        order = self.policy.order(self._waiting, now)
        service = self.queue_model.expected_service()
        free_at = [0.0] * max(0, self.n_slots - len(self._running))
        free_at += [max(0.0, service - (now - t.slot_since) - t.service_s) for t in self._running]
        heapq.heapify(free_at)
        for i, t in enumerate(order):
            t.position = i
            start = heapq.heappop(free_at) if free_at else 0.0
            t.est_start_at = now + start
            heapq.heappush(free_at, start + max(0.0, service - t.service_s))

    def _emit(self, kind: EventKind, request_id: str, tenant: TenantId, at: float, detail: str = "") -> None:
        if self._on_event is not None:
            self._on_event(
                SchedulerEvent(kind=kind, request_id=request_id, tenant=tenant, at=at, detail=detail)
            )

    # -- visibility --------------------------------------------------------------------------

    def snapshot(self) -> SchedulerStats:
        """A consistent picture of queues, slots, counters and the queue model."""
        with self._cv:
            now = self._clock()
            tenants = sorted(set(self._tenant_tokens) | self._active_tenants())
            requests = [
                RequestState(
                    request_id=t.request_id,
                    tenant=t.tenant,
                    urgency=t.urgency,
                    phase="running" if t.phase == "running" else ("preempted" if t.snapshot else "queued"),
                    position=None if t.phase == "running" else t.position,
                    estimated_start_s=0.0
                    if t.phase == "running"
                    else (None if t.est_start_at is None else max(0.0, t.est_start_at - now)),
                    waited_s=max(0.0, now - t.arrival),
                    completion_tokens=t.completion_tokens,
                    deadline_in_s=None if t.deadline is None else t.deadline - now,
                )
                for t in sorted(
                    self._running + self._waiting, key=lambda t: (t.position is not None, t.position or 0)
                )
            ]
            return SchedulerStats(
                model=self.model,
                policy=self.policy.name,
                accepting=self._accepting,
                slots=self.n_slots,
                n_batch=self.n_batch,
                running=len(self._running),
                queued=len(self._waiting),
                submitted=self.counts["submitted"],
                completed=self.counts["completed"],
                preemptions=self.counts["preemptions"],
                timeouts=self.counts["timeouts"],
                cancelled=self.counts["cancelled"],
                failed=self.counts["failed"],
                rejected=self.counts["rejected"],
                steps=self.steps,
                tenants=tuple(
                    TenantStats(
                        tenant=name,
                        queued=sum(1 for t in self._waiting if t.tenant == name),
                        running=sum(1 for t in self._running if t.tenant == name),
                        prompt_tokens=self._tenant_tokens.get(name, [0, 0])[0],
                        output_tokens=self._tenant_tokens.get(name, [0, 0])[1],
                    )
                    for name in tenants
                ),
                requests=tuple(requests),
                queue_model=self.queue_model.estimate(now),
                policy_state=self.policy.describe(),
            )
