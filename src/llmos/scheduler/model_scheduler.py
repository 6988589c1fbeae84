"""One scheduler per loaded model: queue, slots, preemption, deadlines, and one engine step at a time.

The scheduler is a plain synchronous object that lives inside the model's engine core
(:mod:`llmos.core`), beside the engine it steps: no thread, no lock, no event loop. The core's
loop is *receive messages → schedule → step → emit*; this class is the middle of it:

* :meth:`ModelScheduler.add` queues a request and :meth:`ModelScheduler.abort` marks one for
  removal (both take effect at the next step, never in the middle of one);
* :meth:`ModelScheduler.step` is one iteration, returning what each request produced:

  1. **reap**: aborted requests and passed deadlines leave the queue or their slot (``abort``);
  2. **admit**: while the policy's next pick fits (``can_admit``), it gets a slot (``admit``, or
     ``restore`` for a preempted one); when it does not fit and the policy names a victim among
     the running requests, the victim is preempted (``preempt``: a state snapshot, slot freed)
     and requeued, to be restored later without recomputing anything;
  3. **plan**: of the running requests the policy lets run this step (it may pause some: they
     keep their slot), decoding sequences get one token each, prefilling ones chunks of the
     rest of the per-step budget (``n_batch``);
  4. **step**: one ``engine.step(plan)``;
  5. **absorb**: prefill progress, tokens served per tenant (for fair share), finished requests
     (the queueing model learns their service time), and the outputs to hand back.

Every policy (:mod:`llmos.scheduler.policies`), aging, preemption by state snapshot, deadlines,
cancellation, the queueing model (:mod:`llmos.scheduler.queue_model`) and the stats snapshot
live here. Admission bounds (429/503) are decided where requests arrive, from the counts this
scheduler publishes (:meth:`ModelScheduler.counts`; see :mod:`llmos.core.client`).

Engine failures: ``EngineDeadError`` from any engine call fails every request, queued ones too,
and marks the scheduler dead (:attr:`ModelScheduler.dead`): the core hosting it reports that and
exits. Any other error from a step fails the requests planned in that step with
``EngineGenerateError``; the others go on.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import time
from collections.abc import Callable, Mapping

from llmos.config import SchedulerConfig
from llmos.engine.base import Engine, SeqOutput, SeqSnapshot, StepPlan, StepResult
from llmos.errors import (
    Conflict,
    DeadlineExceeded,
    EngineDeadError,
    EngineError,
    EngineGenerateError,
    LLMOSError,
    Overloaded,
)
from llmos.scheduler.policies import Policy, make_policy
from llmos.scheduler.queue_model import QueueModel
from llmos.scheduler.request import GenerationRequest
from llmos.scheduler.request_events import EventKind, SchedulerEvent
from llmos.scheduler.stats import (
    QueuePosition,
    RequestState,
    SchedulerCounts,
    SchedulerStats,
    TenantCounts,
    TenantStats,
)
from llmos.scheduler.step_planner import plan_tokens
from llmos.scheduler.ticket import Ticket
from llmos.types import FinishReason, SeqId, TenantId

logger = logging.getLogger(__name__)

Delivery = tuple[str, SeqOutput | LLMOSError]
"""What one step hands back for one request: ``(request_id, output)``, or the error that ended it.
An output with a ``finish_reason`` and an error are both the request's last delivery."""

_COUNTERS = ("submitted", "completed", "preemptions", "timeouts", "cancelled", "failed")


class ModelScheduler:
    """Schedules every request and every engine step of one loaded model. See the module docstring.

    ``clock`` is a monotonic clock in seconds (deadlines and arrivals are on it); ``on_event``
    hears of each :class:`SchedulerEvent` as it happens and must return quickly.
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
        self._tickets: dict[str, Ticket] = {}
        self._by_seq: dict[SeqId, Ticket] = {}
        self._waiting: list[Ticket] = []
        self._running: list[Ticket] = []
        self._seqnos = itertools.count()
        self._accepting = True
        self._abort_all = False
        self._out: list[Delivery] = []
        self._tenant_tokens: dict[TenantId, list[int]] = {}
        self.tenant_weights: dict[TenantId, float] = dict(self.config.tenant_weights)
        self.counts_total = dict.fromkeys(_COUNTERS, 0)
        self.steps = 0
        self._step_started: tuple[float, int] | None = None
        """(clock, batch) of the last engine step, while the batch stayed busy after it."""
        self.dead: str | None = None
        """Why the engine died, once it has (every later ``add`` raises EngineDeadError)."""
        self.progressed = False
        """Whether the last :meth:`step` changed anything (admitted, reaped, or ran the engine):
        when it did not, stepping again before a message arrives or a deadline passes is useless."""

    # -- requests ----------------------------------------------------------------------------

    def add(self, request: GenerationRequest) -> None:
        """Queue a request. Raises InvalidRequest when its prompt is empty or can never fit,
        Conflict for a request or sequence id already in flight, Overloaded once stopping,
        EngineDeadError once the engine died."""
        spec = request.spec
        if self.dead is not None:
            raise EngineDeadError(self.dead)
        request.check_fits(self.n_ctx)
        if request.request_id in self._tickets or spec.seq_id in self._by_seq:
            raise Conflict(f"request {request.request_id!r} is already in flight", param="request_id")
        if not self._accepting:
            raise Overloaded("the model is shutting down; retry on another server", retry_after=5.0)
        now = self._clock()
        ticket = Ticket(
            request=request,
            seqno=next(self._seqnos),
            arrival=request.arrival if request.arrival is not None else now,
        )
        self.policy.on_enqueue(ticket, now, self._active_tenants())
        self._tickets[request.request_id] = ticket
        self._by_seq[spec.seq_id] = ticket
        self._waiting.append(ticket)
        self.queue_model.record_arrival(now)
        self.counts_total["submitted"] += 1
        self._emit("queue", request.request_id, request.cls.tenant, now)
        self._refresh_positions(now)

    def abort(self, request_id: str) -> None:
        """Drop a request at the next step: it ends with ``finish_reason="abort"``. Unknown or
        finished ids are ignored."""
        ticket = self._tickets.get(request_id)
        if ticket is not None:
            ticket.cancelled = True

    def stop_accepting(self) -> None:
        """Refuse new requests (Overloaded); the ones in flight go on."""
        self._accepting = False

    def abort_all(self) -> None:
        """Stop accepting; at the next step running requests end with ``abort`` and queued ones
        fail with Overloaded."""
        self._accepting = False
        self._abort_all = True

    def set_policy(self, policy: Policy) -> None:
        """Schedule with ``policy`` from the next step on; the queue is handed to it as it is."""
        now = self._clock()
        self.policy = policy
        active: set[TenantId] = set()
        for t in sorted(self._running + self._waiting, key=lambda t: t.seqno):
            policy.on_enqueue(t, now, active)
            active.add(t.tenant)
        for t in self._running:
            policy.on_admit(t, now)
        self._refresh_positions(now)

    def set_tenant_weights(self, weights: Mapping[TenantId, float]) -> None:
        """The fair-share weights by tenant, for a policy that weighs tenants (others ignore them)."""
        self.tenant_weights = dict(weights)
        current = getattr(self.policy, "weights", None)
        if isinstance(current, dict):
            current.clear()
            current.update(weights)

    @property
    def has_work(self) -> bool:
        """Whether a step would do anything (requests queued or running)."""
        return bool(self._waiting or self._running)

    @property
    def in_flight(self) -> int:
        """Requests queued or running."""
        return len(self._waiting) + len(self._running)

    def next_deadline(self) -> float | None:
        """The earliest deadline among the requests in flight (clock seconds), if any."""
        deadlines = [t.deadline for t in self._tickets.values() if t.deadline is not None]
        return min(deadlines) if deadlines else None

    # -- the step ----------------------------------------------------------------------------

    def step(self) -> list[Delivery]:
        """One iteration (reap, admit, plan, engine step, absorb); what it delivered, in order."""
        out, self._out = self._out, []
        self.progressed = False
        if self.dead is not None:
            return out
        try:
            self._step()
        except EngineDeadError as e:
            logger.error("engine of model %s died: %s", self.model, e)
            self.die(e)
            self.progressed = True
        except Exception as e:  # a bug here must fail requests, never hang them
            logger.exception("scheduler step failed for model %s", self.model)
            self.fail_everything(e)
            self.progressed = True
        out.extend(self._out)
        self._out = []
        return out

    def _step(self) -> None:
        now = self._clock()
        if self._step_started is not None:
            # Start to start: the whole loop (schedule, step, emit) is what a request waits on.
            at, batch = self._step_started
            self.queue_model.record_step(batch, now - at)
            self._step_started = None
        changed = self._reap(now)
        changed |= self._admit(now)
        runnable = self.policy.runnable(self._running, now)
        plan = plan_tokens([(t.seq_id, t.prefill_remaining) for t in runnable], self.n_batch)
        self._refresh_positions(now)
        self.progressed = changed or bool(plan)
        if not plan:
            return
        try:
            result = self.engine.step(StepPlan(tokens=plan))
        except EngineDeadError:
            raise
        except Exception as e:
            logger.exception("engine step failed for model %s", self.model)
            self._fail_planned(plan, e)
            return
        self._absorb(plan, result)
        if self._running:
            self._step_started = (now, len(plan))
        self._refresh_positions(self._clock())

    def _reap(self, now: float) -> bool:
        changed = False
        for t in list(self._running):
            if t.cancelled or self._abort_all or (t.deadline is not None and t.deadline <= now):
                self.engine.abort(t.seq_id)
                self._leave_slot(t, now)
                timed_out = not (t.cancelled or self._abort_all)
                reason: FinishReason = "timeout" if timed_out else "abort"
                end = SeqOutput(seq_id=t.seq_id, finish_reason=reason, completion_tokens=t.completion_tokens)
                self._finish(t, now, "timeout" if timed_out else "cancel", end)
                changed = True
        for t in list(self._waiting):
            if t.cancelled:
                end = SeqOutput(seq_id=t.seq_id, finish_reason="abort", completion_tokens=t.completion_tokens)
                self._finish(t, now, "cancel", end)
            elif self._abort_all:
                self._finish(t, now, "cancel", Overloaded("the model is shutting down", retry_after=5.0))
            elif t.deadline is not None and t.deadline <= now:
                late: SeqOutput | LLMOSError = (
                    SeqOutput(seq_id=t.seq_id, finish_reason="timeout", completion_tokens=t.completion_tokens)
                    if t.produced
                    else DeadlineExceeded(f"request {t.request_id!r} passed its deadline while queued")
                )
                self._finish(t, now, "timeout", late)
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
            self._requeue(victim, self.engine.preempt(victim.seq_id), now, "policy")
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

    def _requeue(self, t: Ticket, snapshot: SeqSnapshot, now: float, why: str) -> None:
        t.snapshot = snapshot
        self._leave_slot(t, now)
        t.phase = "preempted"
        self.policy.on_enqueue(t, now, self._active_tenants())
        self._waiting.append(t)
        self.counts_total["preemptions"] += 1
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
                t.steps += 1
                prompt_fed[sid] = fed
        by_seq = {out.seq_id: out for out in result.outputs}
        for sid in prompt_fed.keys() | by_seq.keys():
            t = self._by_seq.get(sid)
            if t is None or t.phase != "running":
                continue
            out = by_seq.get(sid)
            generated = len(out.token_ids) if out is not None else 0
            fed = prompt_fed.get(sid, 0)
            served = self._tenant_tokens.setdefault(t.tenant, [0, 0])
            served[0] += fed
            served[1] += generated
            self.policy.on_tokens(t.tenant, fed, generated)
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
                self.queue_model.record_service(t.service_s, t.steps)
                self._finish(t, now, "finish", out)
            elif generated or out.text or out.logprobs:
                t.produced = True
                self._out.append((t.request_id, out))

    def _finish(self, t: Ticket, now: float, kind: EventKind, item: SeqOutput | LLMOSError) -> None:
        if t in self._waiting:
            self._waiting.remove(t)
        t.phase = "done"
        t.snapshot = None
        self._tickets.pop(t.request_id, None)
        self._by_seq.pop(t.seq_id, None)
        counter = {"finish": "completed", "timeout": "timeouts", "cancel": "cancelled", "fail": "failed"}.get(
            kind
        )
        if counter:
            self.counts_total[counter] += 1
        detail = item.finish_reason if isinstance(item, SeqOutput) else type(item).__name__
        self._emit(kind, t.request_id, t.tenant, now, detail or "")
        self._out.append((t.request_id, item))

    def die(self, error: EngineDeadError) -> None:
        """The engine died: fail every request in flight with ``error``; refuse new ones."""
        self.dead = error.message
        now = self._clock()
        for t in list(self._running):
            self._leave_slot(t, now)
            self._finish(t, now, "fail", EngineDeadError(error.message))
        for t in list(self._waiting):
            self._finish(t, now, "fail", EngineDeadError(error.message))

    def fail_everything(self, error: BaseException) -> None:
        """Fail every request in flight with EngineGenerateError (after a bug in scheduling)."""
        now = self._clock()
        for t in list(self._running):
            try:
                self.engine.abort(t.seq_id)
            except Exception:  # already failing; the slot goes with the request
                logger.debug("abort of %s failed", t.seq_id, exc_info=True)
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

    # -- helpers -----------------------------------------------------------------------------

    def _active_tenants(self) -> set[TenantId]:
        return {t.tenant for t in self._waiting} | {t.tenant for t in self._running}

    def _refresh_positions(self, now: float) -> None:
        if not self._waiting:
            return
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

    def position_of(self, request_id: str) -> tuple[int | None, float | None]:
        """(0-based queue position, seconds until it is expected to hold a slot): (None, 0.0)
        while running, (None, None) when unknown or finished."""
        t = self._tickets.get(request_id)
        if t is None:
            return None, None
        if t.phase == "running":
            return None, 0.0
        est = None if t.est_start_at is None else max(0.0, t.est_start_at - self._clock())
        return t.position, est

    def positions(self) -> tuple[QueuePosition, ...]:
        """Every waiting request's queue position and estimated start."""
        now = self._clock()
        return tuple(
            QueuePosition(
                request_id=t.request_id,
                position=t.position if t.position is not None else i,
                estimated_start_s=None if t.est_start_at is None else max(0.0, t.est_start_at - now),
            )
            for i, t in enumerate(self._waiting)
        )

    def counts(self) -> SchedulerCounts:
        """What admission control needs, cheaply: requests queued and running, per tenant."""
        tenants: dict[TenantId, list[int]] = {}
        for t in self._waiting:
            tenants.setdefault(t.tenant, [0, 0])[0] += 1
        for t in self._running:
            tenants.setdefault(t.tenant, [0, 0])[1] += 1
        return SchedulerCounts(
            running=len(self._running),
            queued=len(self._waiting),
            tenants=tuple(TenantCounts(name, q, r) for name, (q, r) in tenants.items()),
            expected_service_s=self.queue_model.expected_service(),
            accepting=self._accepting,
        )

    def snapshot(self) -> SchedulerStats:
        """A consistent picture of queues, slots, counters and the queue model."""
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
        c = self.counts_total
        return SchedulerStats(
            model=self.model,
            policy=self.policy.name,
            accepting=self._accepting,
            slots=self.n_slots,
            n_batch=self.n_batch,
            running=len(self._running),
            queued=len(self._waiting),
            submitted=c["submitted"],
            completed=c["completed"],
            preemptions=c["preemptions"],
            timeouts=c["timeouts"],
            cancelled=c["cancelled"],
            failed=c["failed"],
            rejected=0,
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
            tenant_weights=dict(self.tenant_weights),
        )
