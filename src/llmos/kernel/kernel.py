"""The kernel: the one object the server (and tests, and ``llmos run`` in-process) hold.

It resolves model names through the registry, asks the residency manager to make a model
resident (an engine core per model, :mod:`llmos.core`), has the core render and tokenize prompts
(on its frontend thread, never behind a decode step), translates OpenAI's parameters into the
engine's, and submits one request per sequence to the core. Every domain operation a route or
the CLI calls lives here; none of them knows about HTTP.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
import uuid
from collections.abc import AsyncGenerator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

from llmos.config import Config
from llmos.data.service import DataService
from llmos.domain.manifest import Manifest
from llmos.domain.tenancy import UsageRecord
from llmos.domain.training import Job
from llmos.engine.base import SamplingParams, SequenceSpec
from llmos.errors import Conflict, EngineDeadError, InvalidRequest, LLMOSError, ModelNotFound
from llmos.kernel import adapters, embeddings, sampling_params, tasks
from llmos.kernel.answer import Answer
from llmos.kernel.cluster import ClusterControl
from llmos.kernel.generation import Generation
from llmos.kernel.inference_request import InferenceRequest
from llmos.kernel.loader import LoadedModel, ModelLoader
from llmos.kernel.ports import GenerationHandle, Registry
from llmos.kernel.pull_events import stream_operation
from llmos.kernel.retrieval import Retrieved, retrieve
from llmos.kernel.types import Embeddings, GenerationParams, PullEvent, RequestMeta, ResidentModel
from llmos.observability.collector import StateSources
from llmos.observability.metrics import Metrics, status_of
from llmos.registry.names import parse_name
from llmos.resources.budget import MemoryBudget
from llmos.resources.estimate import EstimateParams, MemoryEstimate
from llmos.resources.inventory import Inventory
from llmos.resources.keepalive import parse_keep_alive
from llmos.resources.residency import Lease, LoadGrant, ResidencyManager, ResidentInfo
from llmos.resources.residency_events import ResourceEvent
from llmos.resources.wiring import estimate_model
from llmos.scheduler.request import GenerationRequest, RequestClass
from llmos.scheduler.stats import SchedulerStats
from llmos.security.service import Security
from llmos.storage.conversations import ConversationRepository
from llmos.storage.db import Database, open_database
from llmos.structured import ChatPlan, plan_chat
from llmos.tasks import PromptSize, TaskRequest, TaskResult
from llmos.training.manager import RunningJob, TrainingManager
from llmos.types import ChatMessage

log = logging.getLogger(__name__)

STATS_WAIT_S = 1.0
"""How long a view of the schedulers waits for a core busy in a long step before showing its last state."""


@dataclass(frozen=True)
class ResourcesView:
    inventory: Inventory
    budget: MemoryBudget
    used_bytes: int
    residents: tuple[ResidentInfo, ...]
    events: tuple[ResourceEvent, ...]


@dataclass(frozen=True)
class ModelDetails:
    manifest: Manifest
    versions: tuple[Manifest, ...]


class Kernel:
    """Domain operations over registry, resources, schedulers and engines. Build with
    :func:`llmos.kernel.build_kernel`; call :meth:`start` inside the event loop and
    :meth:`shutdown` at the end."""

    def __init__(
        self,
        config: Config,
        *,
        registry: Registry,
        loader: ModelLoader,
        residency: ResidencyManager[LoadedModel],
        inventory: Inventory,
        database: Database | None = None,
        data: DataService | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
        metrics: Metrics | None = None,
        security: Security | None = None,
        cluster: ClusterControl | None = None,
    ) -> None:
        self.config = config
        self.cluster = cluster
        """Cluster mode's nodes and replicas (``--cluster``); None on one machine."""
        self.metrics = metrics or Metrics(clock)
        """Prometheus metrics (``/metrics``); gauges are read from this kernel at scrape time."""
        self._stats: list[SchedulerStats] = []
        self.metrics.watch(
            StateSources(
                scheduler_stats=lambda: self._stats,
                residents=residency.snapshot,
                memory=lambda: (residency.used("cpu"), residency.budget.ram_bytes),
            )
        )
        self.registry = registry
        self._database = database
        self._data = data
        self.security = security or Security(config, lambda: self.database, clock=wall_clock)
        """Tenants, keys, scopes, limits, usage and audit (:mod:`llmos.security`), on :attr:`database`."""
        self.residency = residency
        self.inventory = inventory
        self._loader = loader
        self._clock = clock
        self._wall = wall_clock
        self._started = False
        self._estimates: dict[str, MemoryEstimate] = {}
        self._background: set[asyncio.Future[None]] = set()
        self._deaths: dict[str, tuple[int, str]] = {}
        """Per model: how many of its engine cores died, and why the last one did."""
        self._training: TrainingManager | None = None
        self._training_started = asyncio.Lock()
        loader.on_dead = self._core_died
        self.security.weights.watch(self._weights_changed)

    @property
    def database(self) -> Database:
        """The database (tenants, usage, documents...), opened and migrated on first use."""
        if self._database is None:
            self._database = open_database(self.config)
        return self._database

    @property
    def data(self) -> DataService:
        """Collections, documents, retrieval and datasets (on :attr:`database`), built on first use;
        documents are embedded with :meth:`embed`."""
        if self._data is None:
            from llmos.data.wiring import build_data_service
            from llmos.domain.data import Embedded

            async def embed(model: str, texts: list[str], tenant: str) -> Embedded:
                meta = RequestMeta(request_id=f"data-{uuid.uuid4().hex[:12]}", tenant=tenant)
                result = await self.embed(model, texts, meta)
                return Embedded(result.vectors, result.prompt_tokens)

            self._data = build_data_service(self.config, self.database, embed)
        return self._data

    async def fine_tuning(self) -> TrainingManager:
        """Fine-tuning jobs (:mod:`llmos.training`), built and started on first use (which fails
        jobs a previous server left running and starts queued ones)."""
        async with self._training_started:
            if self._training is None:
                from llmos.training.wiring import build_training

                data = self.data
                manager = build_training(
                    self.config,
                    self.database,
                    self.registry,
                    data.datasets,
                    self.residency,
                    cores=self.residency.cores,
                    inference_active=self._inference_active,
                    record_usage=self._record_training_usage,
                )
                await manager.start()
                self._training = manager
            return self._training

    def training_jobs(self) -> list[RunningJob]:
        """Running fine-tuning jobs (memory, threads, paused), none before the manager is used."""
        return self._training.running() if self._training is not None else []

    async def training_queue(self) -> list[Job]:
        """Fine-tuning jobs waiting to start, none before the manager is used."""
        return await self._training.queued() if self._training is not None else []

    def _inference_active(self) -> int:
        """Inference requests running or queued on every resident model (training yields to them)."""
        return sum(m.core.running + m.core.queued for m in list(self._loader.loaded.values()))

    def _record_training_usage(self, job: Job, tokens: int) -> None:
        self.security.record_usage(
            UsageRecord(
                request_id=job.id,
                tenant=job.tenant,
                operation="fine-tune",
                status=200,
                time=datetime.now(UTC),
                model=job.model,
                digest=job.base_digest,
                prompt_tokens=tokens,
            )
        )

    # ---- lifecycle -----------------------------------------------------------------------

    async def start(self) -> None:
        """Start background work (the keep-alive sweeper). Needs a running event loop."""
        self.residency.start()
        self._started = True

    async def shutdown(self, drain_timeout: float = 0.0) -> None:
        """Let running requests finish for up to ``drain_timeout`` seconds, abort the rest, unload all."""
        residents = [r.model for r in self.residency.snapshot() if r.state == "ready"]
        loaded = [self._loaded_now(key) for key in residents]
        await asyncio.gather(
            *(m.core.drain(drain_timeout) for m in loaded if m is not None), return_exceptions=True
        )
        if self._training is not None:
            await self._training.shutdown()
        await self.residency.shutdown()
        if self.cluster is not None:
            self.cluster.close()
        self._started = False

    # ---- registry ------------------------------------------------------------------------

    async def resolve(self, name: str) -> Manifest:
        """The manifest a name resolves to. Raises InvalidModelName or ModelNotFound."""
        return await asyncio.to_thread(self.registry.resolve, name)

    async def resolve_or_pullable(self, name: str) -> None:
        """Raise ModelNotFound unless ``name`` is registered or can be pulled from the catalog
        (what a collection may name as its embedding model: it is pulled on first use)."""
        try:
            await self.resolve(name)
        except ModelNotFound:
            if not await asyncio.to_thread(self.registry.in_catalog, name):
                raise

    async def list_models(self) -> list[Manifest]:
        return await asyncio.to_thread(self.registry.list)

    async def show_model(self, name: str) -> ModelDetails:
        manifest = await self.resolve(name)
        versions = await asyncio.to_thread(self.registry.versions, manifest.name)
        return ModelDetails(manifest=manifest, versions=tuple(versions))

    def pull(self, name: str) -> AsyncGenerator[PullEvent, None]:
        """Pull a model, streaming progress; the last event has ``done=True``."""
        return stream_operation(lambda report: self.registry.pull(name, report))

    def import_file(self, path: Path, name: str) -> AsyncGenerator[PullEvent, None]:
        """Register a local GGUF under ``name``, streaming progress."""
        return stream_operation(lambda report: self.registry.import_file(path, name, report))

    async def delete_model(self, name: str) -> None:
        """Remove a name (unloading it first if resident). Raises ModelNotFound."""
        manifest = await self.resolve(name)
        key = self._key(name, manifest)
        if self.residency.is_resident(key):
            await self.residency.unload(key, reason="model deleted")
        await asyncio.to_thread(self.registry.remove, name)

    async def copy_model(self, src: str, dst: str) -> Manifest:
        return await asyncio.to_thread(self.registry.copy, src, dst)

    async def ensure_model(self, name: str) -> AsyncGenerator[PullEvent, None]:
        """Resolve ``name``, pulling it first if it is missing (catalog models); yields pull progress."""
        try:
            await self.resolve(name)
        except ModelNotFound:
            async for event in self.pull(name):
                yield event

    # ---- residency -----------------------------------------------------------------------

    async def load(
        self, name: str, *, keep_alive: str | float | None = None, pin: bool = False
    ) -> ResidentModel:
        """Make a registered model resident (no pull). Raises ModelNotFound, ResourceExhausted."""
        manifest = await self.resolve(name)
        target = await self._target(name, manifest)  # an adapter: its base
        await self.residency.ensure_resident(
            target.key,
            self._estimate(target.loaded),
            self._load_fn(target.key, target.loaded),
            keep_alive=_keep_alive(keep_alive),
            pin=pin,
        )
        return next(r for r in self.ps() if r.name == target.key)

    async def unload(self, name: str) -> bool:
        """Unload now if idle (True), else once its requests end (False). Raises ModelNotFound."""
        key = self._resident_key(name)
        return await self.residency.unload(key)

    def ps(self) -> list[ResidentModel]:
        """The resident models, most recently used first."""
        out = []
        for info in self.residency.snapshot():
            model = self._loaded_now(info.model)
            core = model.core if model is not None else None
            out.append(
                ResidentModel(
                    name=info.model,
                    digest=model.manifest.digest if model else "",
                    state="dead" if core is not None and core.dead else info.state,
                    size_bytes=model.manifest.size if model else 0,
                    estimated_bytes=info.estimated_bytes,
                    measured_bytes=info.measured_bytes,
                    in_flight=info.in_flight,
                    pinned=info.pinned,
                    keep_alive=info.keep_alive,
                    expires_at=info.expires_at,
                    running=core.running if core else 0,
                    queued=core.queued if core else 0,
                    weights=model.info.weights if model else "",
                    pid=(core.pid or 0) if core else 0,
                    restarts=self._deaths.get(info.model, (0, ""))[0],
                    last_death=self._deaths.get(info.model, (0, ""))[1],
                )
            )
        return out

    async def scale(self, name: str, replicas: int) -> int:
        """Run ``replicas`` replicas of a model (loading it first); returns how many serve.
        Raises Conflict without cluster mode."""
        if self.cluster is None:
            raise Conflict("scaling needs cluster mode: start the server with --cluster", param="replicas")
        await self.load(name)
        return await self.cluster.scale(self._resident_key(name), replicas)

    async def pin(self, name: str, *, pinned: bool = True) -> None:
        """Keep a resident model loaded (never evicted or expired), or make it evictable again."""
        key = self._resident_key(name)
        if pinned:
            self.residency.pin(key)
        else:
            self.residency.unpin(key)

    async def scheduler_stats(self, wait_s: float = STATS_WAIT_S) -> list[SchedulerStats]:
        """Each resident model's scheduler: queues, tenants, requests and the live queueing model.

        Every core answers between two steps; one whose step takes longer than ``wait_s`` (a
        long prefill on a big model) is shown as of its last answer. The metrics' gauges read
        what this returned last."""
        models = [m for m in list(self._loader.loaded.values()) if m.core.alive]

        async def ask(model: LoadedModel) -> SchedulerStats | None:
            try:
                return await asyncio.wait_for(model.core.stats(), wait_s)
            except (TimeoutError, LLMOSError):
                return model.core.last_stats

        answers = await asyncio.gather(*(ask(m) for m in models))
        self._stats = [a for a in answers if a is not None]
        return list(self._stats)

    def resources(self) -> ResourcesView:
        """The machine, the memory budget, the resident models and recent residency events."""
        return ResourcesView(
            inventory=self.inventory,
            budget=self.residency.budget,
            used_bytes=self.residency.used("cpu"),
            residents=tuple(self.residency.snapshot()),
            events=tuple(self.residency.events.recent(100)),
        )

    async def context_per_sequence(self, name: str) -> int:
        """The tokens one sequence of ``name`` may hold (prompt and answer): from the resident
        model, else from what a load would give it. Raises InvalidModelName or ModelNotFound."""
        manifest = await self.resolve(name)
        loaded = self._loaded_now(self._key(name, manifest))
        if loaded is not None:
            n_ctx, n_slots = loaded.info.n_ctx, loaded.info.n_slots
        else:
            spec = self._loader.load_spec(manifest, Path(manifest.name), 0)
            n_ctx, n_slots = spec.n_ctx, spec.n_slots
        return max(1, n_ctx // max(1, n_slots))

    def loaded(self, name: str) -> LoadedModel | None:
        """The resident model a name (or key) refers to, if it is resident now."""
        try:
            key = str(parse_name(name))
        except LLMOSError:
            return None
        return self._loaded_now(key)

    # ---- embeddings ----------------------------------------------------------------------

    async def embed(
        self,
        model: str,
        inputs: embeddings.EmbedInputs,
        meta: RequestMeta,
        *,
        dimensions: int | None = None,
    ) -> Embeddings:
        """Embed strings or token lists (not mixed) on ``model``, loading it like a chat would.

        Vectors are L2-normalized, in input order. Raises InvalidRequest (no, too many or empty
        inputs, too many tokens, an input longer than the model's context, ``dimensions`` the
        model cannot give), ModelNotFound, ResourceExhausted, MissingDependency (``[ml]`` extra).
        """
        checked = embeddings.check_inputs(inputs)
        manifest = await self.resolve(model)
        if adapters.is_adapter(manifest):
            raise InvalidRequest(
                f"model {model!r} is a fine-tuned LoRA adapter for chat and completions; "
                "embed with its base model",
                param="model",
            )
        key = self._key(model, manifest)
        observation = self.metrics.start_embedding(key, meta.tenant)
        try:
            lease = await self._acquire(key, manifest, _keep_alive(meta.keep_alive))
        except BaseException as exc:
            observation.finish(status_of(exc))
            raise
        error: BaseException | None = None
        try:
            result = await embeddings.embed_on(lease.handle, model, checked, dimensions=dimensions)
            observation.finish("ok", tokens=result.prompt_tokens)
            return result
        except BaseException as exc:
            error = exc
            observation.finish(status_of(exc))
            raise
        finally:
            await self.residency.release(lease)
            await self._drop_if_dead(key, lease.handle, error)

    # ---- generation ----------------------------------------------------------------------

    async def submit(self, request: InferenceRequest) -> Answer:
        """Compose and start one request: the one path every chat and completion takes.

        In order: the sampling fields are checked; a chat's retrieval runs (its ``retrieval``),
        then its tools and response format are planned (off the event loop: compiling a
        client's schemas into a grammar is CPU work it sizes); the model is made resident and
        the prompt rendered and submitted to its engine core, ``n`` sequences per prompt. The
        caller iterates or collects the :class:`Answer` and closes it.

        Raises InvalidRequest (a bad field, a prompt longer than the context), Forbidden (no
        ``data`` scope for retrieval), NotFound (a collection), ModelNotFound,
        ResourceExhausted, EngineDeadError."""
        sampling_params.validate(request.sampling, self.config.limits)
        if request.messages is None:
            prompts = list(request.prompts or ())

            async def tokenize(m: LoadedModel) -> list[list[int]]:
                return await m.core.tokenize(prompts, add_special=True, parse_special=False)

            generation, digest = await self._generate(request.model, tokenize, request.sampling, request.meta)
            return Answer(generation, digest=digest)
        retrieved, plan = await self._compose(request)
        params = request.sampling if plan.grammar is None else replace(request.sampling, grammar=plan.grammar)

        async def render(m: LoadedModel) -> list[list[int]]:
            return [await m.core.render_prompt(plan.messages)]

        generation, digest = await self._generate(request.model, render, params, request.meta)
        return Answer(
            generation,
            plan=plan,
            citations=retrieved.citations,
            retrieval_tokens=retrieved.tokens,
            digest=digest,
        )

    async def measure_prompt(self, request: InferenceRequest) -> PromptSize | None:
        """The tokens ``request``'s chat would render to, beside what one sequence may hold.

        Counting needs the model's tokenizer and chat template, so the model is made resident
        (a generation that follows needs that anyway); None if it was evicted in between."""
        resident = await self.load(request.model, keep_alive=request.meta.keep_alive)
        loaded = self._loaded_now(resident.name)
        if loaded is None or request.messages is None:
            return None
        _, plan = await self._compose(request)
        n_prompt = len(await loaded.core.render_prompt(plan.messages))
        per_sequence = max(1, loaded.info.n_ctx // max(1, loaded.info.n_slots))
        return PromptSize(prompt_tokens=n_prompt, context_tokens=per_sequence)

    async def _compose(self, request: InferenceRequest) -> tuple[Retrieved, ChatPlan]:
        """A chat's messages with retrieved context, planned for its tools and response format."""
        if request.retrieval is None:
            retrieved = Retrieved(request.messages or (), None)
        else:
            retrieved = await retrieve(self.data, self.context_per_sequence, request)
        out = request.output
        plan = await asyncio.to_thread(
            plan_chat,
            list(retrieved.messages),
            response_format=out.response_format,
            tools=out.tools,
            tool_choice=out.tool_choice,
            parallel_tool_calls=out.parallel_tool_calls,
        )
        return retrieved, plan

    async def chat(
        self, model: str, messages: Sequence[ChatMessage], params: GenerationParams, meta: RequestMeta
    ) -> Answer:
        """:meth:`submit` a plain chat with ``params.n`` choices. The caller iterates and closes it."""
        return await self.submit(InferenceRequest(model, meta, messages=tuple(messages), sampling=params))

    async def complete(
        self, model: str, prompts: Sequence[str], params: GenerationParams, meta: RequestMeta
    ) -> Answer:
        """:meth:`submit` a text completion: ``params.n`` choices for each prompt, in prompt order."""
        return await self.submit(InferenceRequest(model, meta, prompts=tuple(prompts), sampling=params))

    async def _generate(
        self,
        model: str,
        render: Callable[[LoadedModel], Awaitable[list[list[int]]]],
        params: GenerationParams,
        meta: RequestMeta,
    ) -> tuple[Generation, str]:
        manifest = await self.resolve(model)
        embeddings.require_generative(model, manifest)
        target = await self._target(model, manifest)
        key = target.key
        observation = self.metrics.start_request(manifest.name if target.adapters else key, meta.tenant)
        try:
            lease = await self._acquire(key, target.loaded, _keep_alive(meta.keep_alive))
        except BaseException as exc:
            observation.finish(status_of(exc))
            raise
        handles: list[tuple[GenerationHandle, int]] = []
        loaded = lease.handle
        try:
            prompts = await render(loaded)
            n_ctx_slot = max(1, loaded.info.n_ctx // max(1, loaded.info.n_slots))
            deadline = None if meta.deadline_s is None else self._clock() + meta.deadline_s
            cls = RequestClass(tenant=meta.tenant, urgency=meta.urgency, deadline=deadline)
            for group, tokens in enumerate(prompts):
                if len(tokens) >= n_ctx_slot:
                    raise InvalidRequest(
                        f"the prompt is {len(tokens)} tokens; this model's context per sequence is "
                        f"{n_ctx_slot} tokens",
                        param="messages",
                    )
                for choice in range(params.n):
                    sp = sampling_params.to_sampling(params, manifest.parameters, choice=choice)
                    room = n_ctx_slot - len(tokens)
                    if sp.max_tokens > room:
                        sp = _with_max_tokens(sp, room)
                    seq_id = f"{meta.request_id}-{group}-{choice}"
                    spec = SequenceSpec(seq_id, tuple(tokens), sp, adapters=target.adapters)
                    req = GenerationRequest(request_id=seq_id, spec=spec, cls=cls)
                    handles.append((loaded.core.submit(req), group))
        except BaseException as exc:
            observation.finish(status_of(exc))
            for handle, _ in handles:
                handle.cancel_now()
            await self.residency.release(lease)
            await self._drop_if_dead(key, loaded, exc)
            raise

        async def release() -> None:
            await self.residency.release(lease)
            await self._drop_if_dead(key, loaded, generation.error)

        generation = Generation(
            request_id=meta.request_id,
            model=model,
            created=int(self._wall()),
            handles=handles,
            prompt_tokens=[len(p) for p in prompts],
            on_close=release,
            observer=observation,
        )
        return generation, (manifest.digest if target.adapters else loaded.manifest.digest)

    async def _acquire(self, key: str, manifest: Manifest, keep_alive: float | None) -> Lease[LoadedModel]:
        """Hold the model resident for one request; a name re-pointed to a new version since
        it loaded is reloaded (once the old version's running requests end), and so is a model
        whose engine core died."""
        for _ in range(3):
            lease = await self.residency.acquire(
                key, self._estimate(manifest), self._load_fn(key, manifest), keep_alive=keep_alive
            )
            dead = lease.handle.core.dead
            if dead is not None:
                await self.residency.release(lease)
                with contextlib.suppress(ModelNotFound):
                    if not await self.residency.unload(key, reason=f"engine died: {dead}"):
                        raise EngineDeadError(f"{dead}; a fresh engine core starts shortly, retry")
                continue
            if lease.handle.manifest.digest == manifest.digest:
                return lease
            await self.residency.release(lease)
            with contextlib.suppress(ModelNotFound):
                if not await self.residency.unload(key, reason=f"{key} now names {manifest.short_digest}"):
                    raise Conflict(
                        f"{key!r} was re-pointed to a new version while the old one is busy; retry shortly",
                        param="model",
                    )
        raise Conflict(f"{key!r} keeps changing version; retry", param="model")

    async def _drop_if_dead(self, key: str, loaded: LoadedModel, error: BaseException | None) -> None:
        """After a request saw its engine die: unload the model (once idle) so the next request
        starts a fresh core (the core's death usually got here first, see :meth:`_core_died`)."""
        if not isinstance(error, EngineDeadError) or self._loaded_now(key) is not loaded:
            return
        if loaded.core.dead is None:  # the engine died, but its core has not told us yet
            return
        await self._unload_dead(loaded, loaded.core.dead)

    def _core_died(self, loaded: LoadedModel, why: str) -> None:
        """A core died (its requests have failed already): unload it now, on its own task."""
        log.error("model %s: %s; a fresh engine core starts on the next request", loaded.key, why)
        self.metrics.worker_replaced(loaded.key)
        self._deaths[loaded.key] = (self._deaths.get(loaded.key, (0, ""))[0] + 1, why)
        task = asyncio.ensure_future(self._unload_dead(loaded, why))
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _unload_dead(self, loaded: LoadedModel, why: str) -> None:
        if self._loaded_now(loaded.key) is not loaded:
            return
        with contextlib.suppress(ModelNotFound):
            await self.residency.unload(loaded.key, reason=f"engine died: {why}")

    def _weights_changed(self, weights: Mapping[str, float]) -> None:
        """A tenant's fair-share weight changed: every core's policy gets the new weights."""
        for model in list(self._loader.loaded.values()):
            model.core.set_tenant_weights(weights)

    async def run_task(self, task: str, request: TaskRequest, meta: RequestMeta) -> TaskResult:
        """Run a task pipeline (summarize, classify...) on the chat path; see :mod:`llmos.kernel.tasks`."""
        return await tasks.run_task(self, task, request, meta)

    @functools.cached_property
    def conversations(self) -> ConversationRepository:
        """The dialogue service's conversations, per tenant, in the database."""
        return ConversationRepository(self.database)

    def new_request_id(self) -> str:
        return uuid.uuid4().hex

    def now(self) -> float:
        """The kernel's (and schedulers') monotonic clock."""
        return self._clock()

    # ---- internals -----------------------------------------------------------------------

    async def _target(self, name: str, manifest: Manifest) -> adapters.Target:
        """What serves ``name``: the model itself, or for a fine-tuned adapter its base's core
        with the adapter applied. Raises ModelNotFound (an adapter whose base is gone)."""
        if adapters.is_adapter(manifest):
            return await asyncio.to_thread(adapters.on_base, self.registry, manifest)
        return adapters.Target(loaded=manifest, key=self._key(name, manifest))

    @staticmethod
    def _key(name: str, manifest: Manifest) -> str:
        """The residency key: ``family:tag``, or the pinned name for a digest reference."""
        return manifest.pinned_name if "@sha256:" in name.lower() else manifest.name

    def resident_key(self, name: str) -> str:
        """The residency key of a resident model named ``name``. Raises ModelNotFound."""
        return self._resident_key(name)

    def _resident_key(self, name: str) -> str:
        key = str(parse_name(name))
        if self._loaded_now(key) is None and not any(r.model == key for r in self.residency.snapshot()):
            raise ModelNotFound(f"model {name!r} is not loaded", param="model")
        return key

    def _loaded_now(self, key: str) -> LoadedModel | None:
        return self._loader.loaded.get(key)

    def _estimate(self, manifest: Manifest) -> MemoryEstimate:
        """The model's memory estimate (from its header once, then cached by digest)."""
        cached = self._estimates.get(manifest.digest)
        if cached is None:
            cached = self._estimates[manifest.digest] = self._compute_estimate(manifest)
        return cached

    def _compute_estimate(self, manifest: Manifest) -> MemoryEstimate:
        params = EstimateParams.from_engine_config(self.config.engine)
        path = self._model_path(manifest)
        try:
            return estimate_model(
                path, params, format=manifest.format, size=manifest.size, metadata=manifest.metadata
            )
        except LLMOSError:
            raise
        except Exception as exc:  # a foreign file the fake engine accepts: charge its size
            log.debug("no estimate for %s (%s); charging its size", manifest.name, exc)
            return MemoryEstimate.fixed(max(manifest.size, 1))

    def _model_path(self, manifest: Manifest) -> Path:
        if not manifest.files:
            raise InvalidRequest(f"model {manifest.name!r} has no files", param="model")
        return self.registry.model_path(manifest)

    def _load_fn(self, key: str, manifest: Manifest) -> Callable[[LoadGrant], Awaitable[LoadedModel]]:
        async def load(grant: LoadGrant) -> LoadedModel:
            if manifest.metadata.get("chat_template_source") == "guessed":
                log.warning(
                    "%s has no chat template of its own: it answers in the %s format, a guess that "
                    "may make it answer poorly (see 'llmos show %s')",
                    key,
                    manifest.metadata.get("chat_template_guess", "ChatML"),
                    key,
                )
            return await self._loader.load(key, manifest, self._model_path(manifest), grant)

        return load


def _keep_alive(value: str | float | None) -> float | None:
    return None if value is None else parse_keep_alive(value)


def _with_max_tokens(sp: SamplingParams, n: int) -> SamplingParams:
    return replace(sp, max_tokens=max(1, n))
