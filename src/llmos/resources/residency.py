"""The residency manager: which models live in memory, like an OS managing pages.

Contract (what the kernel relies on):

* ``acquire`` makes a model resident and counts one in-flight request on it until ``release``;
  the kernel acquires when a request arrives (so queued requests count) and releases when it
  ends. ``ensure_resident`` loads without counting a request (explicit ``load``).
* Several models stay resident while their estimates fit the :class:`MemoryBudget`. A model
  that does not fit evicts idle models, least recently used first; never one with in-flight
  requests, never a pinned one, never one still loading. Nothing is evicted unless the evictions
  are enough: otherwise :class:`llmos.errors.ResourceExhausted` is raised at once, naming what was
  needed, the budget and what is resident, and the resident models keep serving.
* One load at a time per model: concurrent callers for a model that is loading await that
  load. Different models load concurrently when they fit together (space is reserved before
  the load starts).
* Keep-alive (Ollama's meaning, see :mod:`llmos.resources.keepalive`): when a model's last
  in-flight request ends, it expires ``keep_alive`` seconds later (0: unloaded at once,
  ``inf``: never); the sweeper unloads expired idle models. Pinned models never expire.
* Every decision is an event in :attr:`events` (and the log).

Collaborators are injected: ``unload(model, handle)`` stops a model (the kernel's scheduler
and worker), a per-call ``loader(grant)`` starts one, ``measure(handle)`` reads its RSS,
``retune(model, n_threads)`` tells a resident model its new thread count, and the clocks.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Generic, Literal, NoReturn, TypeVar

from llmos.errors import ModelNotFound, ResourceExhausted
from llmos.resources.budget import MemoryBudget
from llmos.resources.estimate import Device, MemoryEstimate
from llmos.resources.keepalive import format_keep_alive
from llmos.resources.residency_events import EventKind, EventLog, ResourceEvent
from llmos.resources.threads import threads_for

log = logging.getLogger(__name__)

T = TypeVar("T")
MiB = 1024 * 1024

State = Literal["loading", "ready", "unloading"]


@dataclass(frozen=True)
class LoadGrant:
    """What a loader is told: which model, with how many threads, within which estimate."""

    model: str
    n_threads: int
    estimate: MemoryEstimate


Loader = Callable[[LoadGrant], Awaitable[T]]
Unloader = Callable[[str, T], Awaitable[None]]
Measurer = Callable[[T], Awaitable[int | None]]
Retuner = Callable[[str, int], None]


@dataclass(frozen=True)
class ResidentInfo:
    """One resident model as shown by ``GET /api/resources`` and ``llmos ps``."""

    model: str
    state: State
    device: Device
    estimated_bytes: int
    measured_bytes: int | None
    charged_bytes: int
    """What the budget counts: the larger of estimate and measurement."""
    in_flight: int
    pinned: bool
    keep_alive: float
    last_used: float
    """Wall-clock time of the last request's end (or the load)."""
    expires_at: float | None
    """Wall-clock time the keep-alive passes; None while busy, pinned or kept forever."""
    threads: int


@dataclass(frozen=True)
class EvictionPlan:
    """Which idle models to evict, least recently used first, so that a model fits."""

    victims: tuple[str, ...]
    freed: dict[Device, int]
    shortfall: dict[Device, int]
    """Bytes still missing per pool after the victims go; empty when the plan suffices."""

    @property
    def sufficient(self) -> bool:
        return not self.shortfall


@dataclass(eq=False)
class _Entry(Generic[T]):
    model: str
    estimate: MemoryEstimate
    ready: asyncio.Future[T]
    state: State = "loading"
    handle: T | None = None
    in_flight: int = 0
    pinned: bool = False
    keep_alive: float = 300.0
    last_used: float = 0.0
    expires_at: float | None = None
    measured: int | None = None
    threads: int = 1
    unload_when_idle: bool = False
    gone: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task[None] | None = None
    """The load, held so it is not garbage-collected while it runs."""

    def charges(self) -> dict[Device, int]:
        out = self.estimate.charges()
        if self.measured is not None:
            out["cpu"] = max(out.get("cpu", 0), self.measured)
        return out

    @property
    def evictable(self) -> bool:
        return self.state == "ready" and self.in_flight == 0 and not self.pinned


class Lease(Generic[T]):
    """One in-flight request's hold on a resident model; give it back with ``release``."""

    def __init__(self, model: str, handle: T, keep_alive: float | None, entry: _Entry[T]) -> None:
        self.model = model
        self.handle = handle
        self.keep_alive = keep_alive
        self._entry = entry
        self.released = False


class ResidencyManager(Generic[T]):
    """Decides which models are resident; see the module docstring for the contract."""

    def __init__(
        self,
        budget: MemoryBudget,
        *,
        unload: Unloader[T],
        cores: int,
        default_keep_alive: float = 300.0,
        measure: Measurer[T] | None = None,
        retune: Retuner | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        sweep_interval: float = 1.0,
        events: EventLog | None = None,
    ) -> None:
        self.budget = budget
        self.cores = max(1, cores)
        self.default_keep_alive = default_keep_alive
        self.events = events or EventLog()
        self._unload = unload
        self._measure = measure
        self._retune = retune
        self._clock = clock
        self._wall = wall_clock
        self._sleep = sleep
        self._sweep_interval = sweep_interval
        self._entries: dict[str, _Entry[T]] = {}
        self._reserved: dict[str, int] = {}
        """RAM held by work beside the models (fine-tuning jobs), by owner."""
        self._model_keep_alive: dict[str, float] = {}
        self._admit_lock = asyncio.Lock()
        self._sweeper: asyncio.Task[None] | None = None

    # ---- queries -------------------------------------------------------------------------

    def used(self, device: Device = "cpu") -> int:
        """Bytes charged to ``device`` by resident, loading and unloading models."""
        models = sum(e.charges().get(device, 0) for e in self._entries.values())
        return models + (sum(self._reserved.values()) if device == "cpu" else 0)

    def free(self, device: Device = "cpu") -> int:
        return self.budget.capacity(device) - self.used(device)

    def fits(self, estimate: MemoryEstimate) -> bool:
        """Whether ``estimate`` fits next to the current residents without evicting anything."""
        return all(need <= self.free(dev) for dev, need in estimate.charges().items())

    def can_reserve(self, nbytes: int) -> bool:
        """Whether ``nbytes`` of RAM fit beside the residents and reservations, evicting nothing."""
        return nbytes <= self.free("cpu")

    def reserve(self, owner: str, nbytes: int) -> bool:
        """Charge ``nbytes`` of RAM to ``owner`` (a fine-tuning job) if :meth:`can_reserve`; models
        then load only into what is left. Idle models are not evicted for it: inference comes first."""
        if owner in self._reserved:
            return True
        if not self.can_reserve(nbytes):
            return False
        self._reserved[owner] = nbytes
        return True

    def unreserve(self, owner: str) -> None:
        """Give back ``owner``'s reservation (idempotent)."""
        self._reserved.pop(owner, None)

    def reservations(self) -> dict[str, int]:
        return dict(self._reserved)

    def is_resident(self, model: str) -> bool:
        entry = self._entries.get(model)
        return entry is not None and entry.state == "ready"

    def plan_eviction(self, estimate: MemoryEstimate) -> EvictionPlan:
        """The idle models to evict, least recently used first, for ``estimate`` to fit.

        A query: nothing is evicted. ``plan.sufficient`` is False when even evicting every
        evictable model would not make room.
        """
        short = {dev: need - self.free(dev) for dev, need in estimate.charges().items()}
        short = {dev: n for dev, n in short.items() if n > 0}
        victims: list[str] = []
        freed: dict[Device, int] = {}
        for entry in sorted((e for e in self._entries.values() if e.evictable), key=lambda e: e.last_used):
            if not short:
                break
            charges = entry.charges()
            if not any(charges.get(dev, 0) > 0 for dev in short):
                continue
            victims.append(entry.model)
            for dev, n in charges.items():
                freed[dev] = freed.get(dev, 0) + n
                if dev in short:
                    short[dev] -= n
            short = {dev: n for dev, n in short.items() if n > 0}
        return EvictionPlan(victims=tuple(victims), freed=freed, shortfall=short)

    def snapshot(self) -> list[ResidentInfo]:
        """The resident models, most recently used first."""
        now, wall = self._clock(), self._wall()
        out = []
        for e in sorted(self._entries.values(), key=lambda e: -e.last_used):
            expires = None if e.expires_at is None or e.pinned else wall + (e.expires_at - now)
            out.append(
                ResidentInfo(
                    model=e.model,
                    state=e.state,
                    device=e.estimate.device,
                    estimated_bytes=e.estimate.total,
                    measured_bytes=e.measured,
                    charged_bytes=sum(e.charges().values()),
                    in_flight=e.in_flight,
                    pinned=e.pinned,
                    keep_alive=e.keep_alive,
                    last_used=wall + (e.last_used - now),
                    expires_at=expires,
                    threads=e.threads,
                )
            )
        return out

    def threads(self, model: str) -> int:
        """Threads the model should use now (what it would get if it loaded now, if absent)."""
        demand = self._demand()
        demand.setdefault(model, 1)
        return threads_for(demand, self.cores)[model]

    # ---- keep-alive and pinning ----------------------------------------------------------

    def set_model_keep_alive(self, model: str, seconds: float | None) -> None:
        """A model's default keep-alive (e.g. from its manifest); None restores the global one."""
        if seconds is None:
            self._model_keep_alive.pop(model, None)
        else:
            self._model_keep_alive[model] = seconds

    def keep_alive_for(self, model: str, override: float | None = None) -> float:
        if override is not None:
            return override
        return self._model_keep_alive.get(model, self.default_keep_alive)

    def pin(self, model: str) -> None:
        """Keep ``model`` resident: never evicted, never expired. Raises ModelNotFound if not resident."""
        self._resident(model).pinned = True

    def unpin(self, model: str) -> None:
        """Make ``model`` evictable again; its keep-alive counts from now."""
        entry = self._resident(model)
        entry.pinned = False
        if entry.in_flight == 0:
            entry.last_used = self._clock()
            entry.expires_at = self._deadline(entry.last_used, entry.keep_alive)

    # ---- commands ------------------------------------------------------------------------

    async def ensure_resident(
        self,
        model: str,
        estimate: MemoryEstimate,
        loader: Loader[T],
        *,
        keep_alive: float | None = None,
        pin: bool = False,
    ) -> T:
        """Make ``model`` resident (loading it, evicting idle models if needed) and return its handle.

        Raises ResourceExhausted when it cannot fit, or whatever the loader raised.
        """
        entry, handle = await self._ensure(model, estimate, loader, hold=False)
        entry.keep_alive = self.keep_alive_for(model, keep_alive)
        if pin:
            entry.pinned = True
        if entry.in_flight == 0:
            entry.last_used = self._clock()
            entry.expires_at = self._deadline(entry.last_used, entry.keep_alive)
        return handle

    async def acquire(
        self,
        model: str,
        estimate: MemoryEstimate,
        loader: Loader[T],
        *,
        keep_alive: float | None = None,
    ) -> Lease[T]:
        """Like :meth:`ensure_resident`, and count one in-flight request until :meth:`release`."""
        entry, handle = await self._ensure(model, estimate, loader, hold=True)
        entry.expires_at = None
        self._retune_all()
        return Lease(model, handle, keep_alive, entry)

    async def release(self, lease: Lease[T]) -> None:
        """End one request: the model's keep-alive starts counting when its last request ends."""
        if lease.released:
            return
        lease.released = True
        entry = lease._entry
        if self._entries.get(entry.model) is not entry:
            return
        entry.in_flight = max(0, entry.in_flight - 1)
        entry.last_used = self._clock()
        entry.keep_alive = self.keep_alive_for(entry.model, lease.keep_alive)
        if entry.in_flight == 0:
            entry.expires_at = self._deadline(entry.last_used, entry.keep_alive)
            if entry.unload_when_idle:
                await self._unload_entry(entry, "unload", "unload requested while busy; last request ended")
            elif entry.keep_alive == 0 and not entry.pinned:
                await self._unload_entry(entry, "expire", "keep_alive 0: unloaded after the request")
        self._retune_all()

    @contextlib.asynccontextmanager
    async def use(
        self, model: str, estimate: MemoryEstimate, loader: Loader[T], *, keep_alive: float | None = None
    ) -> AsyncIterator[T]:
        """``async with manager.use(...) as handle:`` acquire for the block, release after."""
        lease = await self.acquire(model, estimate, loader, keep_alive=keep_alive)
        try:
            yield lease.handle
        finally:
            await self.release(lease)

    async def unload(self, model: str, *, reason: str = "unloaded on request") -> bool:
        """Unload ``model`` now if idle (True); if busy, once its last request ends (False).

        An explicit unload also drops a pin. Raises ModelNotFound if it is not resident.
        """
        entry = self._entries.get(model)
        if entry is None or entry.state == "unloading":
            raise ModelNotFound(f"model {model!r} is not loaded", param="model")
        entry.pinned = False
        if entry.state == "loading" or entry.in_flight > 0:
            entry.unload_when_idle = True
            return False
        await self._unload_entry(entry, "unload", reason)
        return True

    async def sweep(self) -> list[str]:
        """Unload every idle, unpinned model whose keep-alive has passed; returns their names."""
        now = self._clock()
        expired = [
            e
            for e in self._entries.values()
            if e.evictable and e.expires_at is not None and e.expires_at <= now
        ]
        expired = [e for e in expired if self._claim(e)]
        for entry in expired:
            await self._finish_unload(
                entry, "expire", f"idle longer than keep_alive {format_keep_alive(entry.keep_alive)}"
            )
        if expired:
            self._retune_all()
        return [e.model for e in expired]

    async def refresh_measurements(self) -> None:
        """Ask ``measure`` for the RSS of every ready model."""
        if self._measure is None:
            return
        for entry in list(self._entries.values()):
            if entry.state == "ready" and entry.handle is not None:
                await self._record_measurement(entry, entry.handle)

    def report_measured(self, model: str, rss_bytes: int) -> None:
        """Record a measured RSS for ``model`` (from its worker's health) if it is resident."""
        entry = self._entries.get(model)
        if entry is not None and rss_bytes > 0:
            entry.measured = rss_bytes

    def start(self) -> None:
        """Start the keep-alive sweeper (needs a running event loop)."""
        if self._sweeper is None or self._sweeper.done():
            self._sweeper = asyncio.get_running_loop().create_task(
                self._sweep_forever(), name="llmos-residency-sweeper"
            )

    async def stop(self) -> None:
        """Stop the sweeper; resident models stay."""
        task, self._sweeper = self._sweeper, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def shutdown(self) -> None:
        """Stop the sweeper and unload every model."""
        await self.stop()
        for entry in list(self._entries.values()):
            if entry.state == "loading":
                with contextlib.suppress(BaseException):
                    await asyncio.shield(entry.ready)
            if self._entries.get(entry.model) is entry and entry.state == "ready":
                await self._unload_entry(entry, "unload", "server shutting down")

    # ---- internals -----------------------------------------------------------------------

    def _resident(self, model: str) -> _Entry[T]:
        entry = self._entries.get(model)
        if entry is None or entry.state == "unloading":
            raise ModelNotFound(f"model {model!r} is not loaded", param="model")
        return entry

    @staticmethod
    def _deadline(now: float, keep_alive: float) -> float | None:
        return None if math.isinf(keep_alive) else now + keep_alive

    def _demand(self) -> dict[str, int]:
        return {m: e.in_flight for m, e in self._entries.items() if e.state != "unloading"}

    def _retune_all(self) -> None:
        shares = threads_for(self._demand(), self.cores)
        for model, n in shares.items():
            entry = self._entries[model]
            if entry.threads != n and entry.state == "ready":
                entry.threads = n
                if self._retune is not None:
                    self._retune(model, n)

    async def _ensure(
        self, model: str, estimate: MemoryEstimate, loader: Loader[T], *, hold: bool
    ) -> tuple[_Entry[T], T]:
        while True:
            entry = self._entries.get(model)
            if entry is not None:
                if entry.state == "unloading":
                    await entry.gone.wait()
                    continue
                if hold:
                    entry.in_flight += 1
                try:
                    handle = await asyncio.shield(entry.ready)
                except BaseException:
                    if hold and self._entries.get(model) is entry:
                        entry.in_flight -= 1
                    raise
                return entry, handle
            async with self._admit_lock:
                if model in self._entries:
                    continue
                await self._make_room(model, estimate)
                entry = _Entry(
                    model=model, estimate=estimate, ready=asyncio.get_running_loop().create_future()
                )
                entry.keep_alive = self.keep_alive_for(model)
                entry.last_used = self._clock()
                entry.threads = self.threads(model)
                self._entries[model] = entry
                entry.task = asyncio.get_running_loop().create_task(
                    self._load(entry, loader), name=f"llmos-load-{model}"
                )

    async def _make_room(self, model: str, estimate: MemoryEstimate) -> None:
        """Evict per plan, or raise ResourceExhausted having evicted nothing. Holds the admit lock."""
        for dev, need in estimate.charges().items():
            capacity = self.budget.capacity(dev)
            if need > capacity:
                self._reject(
                    model,
                    estimate,
                    f"it needs {_fmt(need)} of {_pool(dev)} but the memory budget "
                    f"for {_pool(dev)} is {_fmt(capacity)}: it can never fit",
                )
        if self.fits(estimate):
            return
        plan = self.plan_eviction(estimate)
        if not plan.sufficient:
            dev, missing = next(iter(plan.shortfall.items()))
            need = estimate.charges()[dev]
            self._reject(
                model,
                estimate,
                f"it needs {_fmt(need)} of {_pool(dev)} and the memory budget is "
                f"{_fmt(self.budget.capacity(dev))}, but only {_fmt(need - missing)} could be freed "
                "(busy and pinned models are never evicted)",
            )
        victims = [self._entries[v] for v in plan.victims]
        for entry in [e for e in victims if self._claim(e)]:
            await self._finish_unload(
                entry,
                "evict",
                f"least recently used idle model; {model!r} needs {_fmt(sum(estimate.charges().values()))}",
                for_model=model,
            )

    def _reject(self, model: str, estimate: MemoryEstimate, why: str) -> NoReturn:
        residents = "; ".join(self._describe(e) for e in self._entries.values()) or "none"
        message = (
            f"cannot load {model!r}: {why}. Estimate: {estimate.describe()}. Resident: {residents}. "
            "Raise LLMOS_MEMORY_BUDGET, unload or unpin a model, or lower the context size."
        )
        self._record("reject", model, why, sum(estimate.charges().values()))
        raise ResourceExhausted(message, param="model")

    def _describe(self, e: _Entry[T]) -> str:
        status: list[str] = [e.state] if e.state != "ready" else []
        if e.in_flight:
            status.append(f"busy with {e.in_flight} request{'s' if e.in_flight != 1 else ''}")
        if e.pinned:
            status.append("pinned")
        return f"{e.model} {_fmt(sum(e.charges().values()))}" + (
            f" ({', '.join(status)})" if status else " (idle)"
        )

    async def _load(self, entry: _Entry[T], loader: Loader[T]) -> None:
        grant = LoadGrant(model=entry.model, n_threads=entry.threads, estimate=entry.estimate)
        try:
            handle = await loader(grant)
        except BaseException as exc:
            self._entries.pop(entry.model, None)
            entry.gone.set()
            self._record("load_failed", entry.model, f"{type(exc).__name__}: {exc}", entry.estimate.total)
            if isinstance(exc, Exception):
                entry.ready.set_exception(exc)
                entry.ready.exception()  # retrieved here: a load nobody awaits must not warn
                return
            entry.ready.cancel()
            raise
        entry.handle = handle
        # Measured while still "loading", so nothing can evict it before its waiters get it.
        await self._record_measurement(entry, handle)
        entry.state = "ready"
        entry.last_used = self._clock()
        if entry.in_flight == 0:
            entry.expires_at = self._deadline(entry.last_used, entry.keep_alive)
        self._record(
            "load",
            entry.model,
            f"loaded with {entry.threads} threads; estimate {entry.estimate.describe()}",
            entry.estimate.total,
        )
        entry.ready.set_result(handle)
        if entry.unload_when_idle and entry.in_flight == 0:
            await self._unload_entry(entry, "unload", "unload requested while loading")

    async def _record_measurement(self, entry: _Entry[T], handle: T) -> None:
        if self._measure is None:
            return
        try:
            rss = await self._measure(handle)
        except Exception as exc:
            log.warning("could not measure %s: %s", entry.model, exc)
            return
        if rss:
            entry.measured = rss

    async def _unload_entry(
        self, entry: _Entry[T], kind: EventKind, reason: str, *, for_model: str | None = None
    ) -> None:
        if self._claim(entry):
            await self._finish_unload(entry, kind, reason, for_model=for_model)

    @staticmethod
    def _claim(entry: _Entry[T]) -> bool:
        """Mark a ready entry as unloading (synchronously, so no request can acquire it meanwhile)."""
        if entry.state != "ready" or entry.handle is None:
            return False
        entry.state = "unloading"
        return True

    async def _finish_unload(
        self, entry: _Entry[T], kind: EventKind, reason: str, *, for_model: str | None = None
    ) -> None:
        freed = sum(entry.charges().values())
        try:
            if entry.handle is not None:
                await self._unload(entry.model, entry.handle)
        except Exception as exc:
            log.error("unloading %s failed (counted as unloaded): %s", entry.model, exc)
            reason = f"{reason}; unload raised {type(exc).__name__}: {exc}"
        finally:
            if self._entries.get(entry.model) is entry:
                del self._entries[entry.model]
            entry.gone.set()
        self._record(kind, entry.model, reason, freed, for_model=for_model)

    def _record(
        self, kind: EventKind, model: str, reason: str, nbytes: int, *, for_model: str | None = None
    ) -> None:
        self.events.record(
            ResourceEvent(
                at=self._wall(), kind=kind, model=model, reason=reason, bytes=nbytes, for_model=for_model
            )
        )

    async def _sweep_forever(self) -> None:
        while True:
            await self._sleep(self._next_sweep_delay())
            try:
                await self.sweep()
            except Exception:
                log.exception("keep-alive sweep failed")

    def _next_sweep_delay(self) -> float:
        now = self._clock()
        deadlines = [
            e.expires_at - now for e in self._entries.values() if e.evictable and e.expires_at is not None
        ]
        return max(0.0, min([self._sweep_interval, *deadlines]))


def _fmt(n: int) -> str:
    if n >= 1024 * MiB:
        return f"{n / (1024 * MiB):.2f} GiB"
    return f"{n / MiB:.0f} MiB"


def _pool(device: Device) -> str:
    return "RAM" if device == "cpu" else f"VRAM on {device}"
