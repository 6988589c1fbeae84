"""What :class:`~llmos.sdk.Client` offers: its own methods (the server, generation), model
handles and its resources (``models``, ``security``, ``embeddings``, ``data``, ``tasks``,
``conversations``, ``fine_tuning``): one line a method over the calls of the resource modules, run by the
synchronous runner. ``async_resources.py`` is this file, awaited (``scripts/unasync_sdk.py``)."""

from __future__ import annotations

import builtins
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from datetime import date
from typing import Any

from llmos.sdk import _core
from llmos.sdk import conversations as conv
from llmos.sdk import data as dat
from llmos.sdk import embeddings as emb
from llmos.sdk import fine_tuning as ft
from llmos.sdk import models as mod
from llmos.sdk import security as sec
from llmos.sdk import tasks as tsk
from llmos.sdk._sync import Runner
from llmos.sdk.errors import APIConnectionError, LLMOSClientError, NotFoundError
from llmos.sdk.types import ChatMessage, Generation, Model, ModelDetail, Progress, RunningModel

ProgressCallback = Callable[[Progress], None]


class ServerMethods:
    """The client's own methods: the server's state, residency and generation."""

    def _connect(self, runner: Runner) -> None:
        self._r = runner
        self._http = runner.http
        self.base_url = runner.settings.base_url
        self.models = Models(runner)
        self.security = Security(runner)
        self.embeddings = Embeddings(runner)
        self.data = Data(runner)
        self.tasks = Tasks(runner)
        self.conversations = Conversations(runner)
        self.fine_tuning = FineTuning(runner)

    def is_reachable(self) -> bool:
        """Whether a server answers ``/health`` at the base URL."""
        try:
            self._r.run(mod.health())
        except APIConnectionError:
            return False
        return True

    def ready(self) -> bool:
        """Whether the server is ready to serve (``/ready``)."""
        try:
            self._r.run(mod.ready())
        except LLMOSClientError:
            return False
        return True

    def ps(self) -> list[RunningModel]:
        return self._r.run(mod.ps())

    def load_model(
        self,
        name: str,
        *,
        keep_alive: str | float | None = None,
        pin: bool = False,
        pull: bool = True,
        progress: ProgressCallback | None = None,
    ) -> ModelHandle:
        """Make ``name`` resident on the server (pulling it first if it is missing and ``pull``)."""
        try:
            self._r.run(mod.load(name, keep_alive, pin))
        except NotFoundError:
            if not pull:
                raise
            _core.drain(self._r.stream(mod.pull(name)), progress, mod.NO_PROGRESS)
            self._r.run(mod.load(name, keep_alive, pin))
        return ModelHandle(self._r, name)

    def model(self, name: str) -> ModelHandle:
        """A handle for ``name`` without loading it first (the first request loads it)."""
        return ModelHandle(self._r, name)

    def unload(self, name: str) -> bool:
        """Unload now (True) or once the model's running requests end (False)."""
        return self._r.run(mod.unload(name))

    def pin(self, name: str) -> RunningModel:
        """Keep a loaded model resident: never evicted, never expired."""
        return self._r.run(mod.pin(name))

    def unpin(self, name: str) -> RunningModel:
        return self._r.run(mod.unpin(name))

    def scheduler(self) -> list[dict[str, Any]]:
        """Each loaded model's scheduler: queues, tenants, requests, the live queueing model."""
        return self._r.run(mod.scheduler())

    def resources(self) -> dict[str, Any]:
        """The server's inventory, memory budget and resident models."""
        return self._r.run(mod.resources())

    def cluster(self) -> dict[str, Any]:
        """Cluster mode: the nodes, their resources, each model's replicas, queues and health
        (``{"enabled": false}`` on one machine)."""
        return self._r.run(mod.cluster())

    def scale(self, name: str, replicas: int) -> int:
        """Run ``replicas`` replicas of a model (cluster mode; loading it first); returns how many serve."""
        return self._r.run(mod.scale(name, replicas))

    def chat(self, model: str, messages: Iterable[ChatMessage], **params: Any) -> Generation:
        return self._r.run(mod.chat(model, messages, params))

    def stream_chat(self, model: str, messages: Iterable[ChatMessage], **params: Any) -> Iterator[str]:
        """The first choice's text deltas as they are generated."""
        return self._r.stream(mod.stream_chat(model, messages, params))

    def complete(self, model: str, prompt: str, **params: Any) -> Generation:
        return self._r.run(mod.complete(model, prompt, params))

    def stream_completion(self, model: str, prompt: str, **params: Any) -> Iterator[str]:
        return self._r.stream(mod.stream_completion(model, prompt, params))


class ModelHandle:
    """A model on the server: generate, chat and stream with it."""

    def __init__(self, runner: Runner, name: str) -> None:
        self._r = runner
        self.name = name

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r})"

    def generate_text(self, prompt: str, **params: Any) -> str:
        """Complete ``prompt`` (OpenAI's completion parameters: max_tokens, temperature, stop, ...)."""
        generation = self._r.run(mod.complete(self.name, prompt, params))
        return generation.text

    def chat(self, messages: Iterable[ChatMessage] | str, **params: Any) -> Generation:
        """Answer a conversation (a string is one user message); ``.text`` is the reply."""
        return self._r.run(mod.chat(self.name, mod.messages(messages), params))

    def stream(
        self, prompt: str | None = None, *, messages: Iterable[ChatMessage] | None = None, **params: Any
    ) -> Iterator[str]:
        """Text deltas as they are generated: of a chat when ``messages`` are given, else of ``prompt``."""
        return self._r.stream(mod.stream(self.name, prompt, messages, params))

    def unload(self) -> bool:
        return self._r.run(mod.unload(self.name))


class Models:
    """``client.models``: the registry on the server."""

    def __init__(self, runner: Runner) -> None:
        self._r = runner

    def list(self) -> builtins.list[Model]:
        return self._r.run(mod.list_models())

    def show(self, name: str) -> ModelDetail:
        return self._r.run(mod.show(name))

    def pull_stream(self, name: str) -> Iterator[Progress]:
        return self._r.stream(mod.pull(name))

    def pull(self, name: str, *, progress: ProgressCallback | None = None) -> Progress:
        """Pull ``name`` onto the server; ``progress`` sees every event. Returns the last one."""
        return _core.drain(self._r.stream(mod.pull(name)), progress, mod.NO_PROGRESS)

    def import_file(self, path: str, name: str, *, progress: ProgressCallback | None = None) -> Progress:
        """Register a GGUF that is on the *server's* filesystem under ``name``."""
        return _core.drain(self._r.stream(mod.import_file(path, name)), progress, mod.NO_PROGRESS)

    def delete(self, name: str) -> None:
        self._r.run(mod.delete(name))

    def copy(self, source: str, destination: str) -> Model:
        return self._r.run(mod.copy(source, destination))


class Security:
    """``client.security``: who am I, usage, the audit log; ``.tenants`` and ``.keys``."""

    def __init__(self, runner: Runner) -> None:
        self._r = runner
        self.tenants = Tenants(runner)
        self.keys = Keys(runner)

    def whoami(self) -> sec.WhoAmI:
        """The caller: tenant, key prefix, scopes, and whether the server requires keys."""
        return self._r.run(sec.whoami())

    def usage(
        self,
        group_by: Iterable[str] = ("tenant",),
        *,
        tenant: str | None = None,
        model: str | None = None,
        since: date | None = None,
        until: date | None = None,
    ) -> list[sec.UsageRow]:
        """Requests, tokens and errors summed by tenant, model, day and/or key (your own tenant's
        unless you are an admin)."""
        return self._r.run(sec.usage(group_by, tenant, model, since, until))

    def audit(
        self, *, limit: int = 100, action: str | None = None, tenant: str | None = None
    ) -> list[sec.AuditEvent]:
        """The newest audit events first (admin)."""
        return self._r.run(sec.audit(limit, action, tenant))


class Tenants:
    def __init__(self, runner: Runner) -> None:
        self._r = runner

    def list(self) -> builtins.list[sec.Tenant]:
        return self._r.run(sec.tenants_list())

    def get(self, name: str) -> sec.Tenant:
        return self._r.run(sec.tenants_get(name))

    def create(
        self,
        name: str,
        *,
        plan: str | None = None,
        weight: float | None = None,
        limits: Mapping[str, Any] | None = None,
        store_prompts: bool = False,
        max_urgency: int | None = None,
    ) -> sec.Tenant:
        """A new tenant; its weight and urgency ceiling are its plan's unless given."""
        return self._r.run(sec.tenants_create(name, plan, weight, limits, store_prompts, max_urgency))

    def update(
        self,
        name: str,
        *,
        plan: str | None = None,
        weight: float | None = None,
        limits: Mapping[str, Any] | None = None,
        store_prompts: bool | None = None,
        max_urgency: int | None = None,
    ) -> sec.Tenant:
        """Change a plan, weight, urgency ceiling, flags or limits (merged: a limit set to None
        is removed)."""
        return self._r.run(sec.tenants_update(name, plan, weight, limits, store_prompts, max_urgency))


class Keys:
    def __init__(self, runner: Runner) -> None:
        self._r = runner

    def list(self, *, tenant: str | None = None) -> builtins.list[sec.ApiKey]:
        return self._r.run(sec.keys_list(tenant))

    def get(self, key_id: str) -> sec.ApiKey:
        return self._r.run(sec.keys_get(key_id))

    def create(
        self,
        *,
        tenant: str | None = None,
        name: str = "",
        scopes: Iterable[str] | None = None,
        models: Iterable[str] | None = None,
        expires_in: int | None = None,
        limits: Mapping[str, Any] | None = None,
        admin: bool = False,
    ) -> sec.ApiKey:
        """A new key; its ``.key`` is the secret, shown this once."""
        return self._r.run(sec.keys_create(tenant, name, scopes, models, expires_in, limits, admin))

    def update(
        self, key_id: str, *, name: str | None = None, limits: Mapping[str, Any] | None = None
    ) -> sec.ApiKey:
        """Rename a key or change its limits (admin; a limit set to None is removed)."""
        return self._r.run(sec.keys_update(key_id, name, limits))

    def revoke(self, key_id: str) -> sec.ApiKey:
        return self._r.run(sec.keys_revoke(key_id))


class Embeddings:
    """``client.embeddings``: vectors for texts or token lists."""

    def __init__(self, runner: Runner) -> None:
        self._r = runner

    def create(
        self, model: str, input: emb.EmbeddingInput, *, dimensions: int | None = None, user: str | None = None
    ) -> emb.EmbeddingResult:
        """Embed ``input`` with ``model``; raises BadRequestError for an input the model cannot take."""
        return self._r.run(emb.create(model, input, dimensions, user))


class Data:
    """``client.data``: collections of documents, hybrid search, retrieval-augmented answers and
    fine-tuning datasets."""

    def __init__(self, runner: Runner) -> None:
        self._r = runner

    def create_collection(
        self,
        name: str,
        *,
        embedding_model: str | None = None,
        chunk_tokens: int | None = None,
        chunk_overlap: int | None = None,
        description: str = "",
    ) -> dat.CollectionInfo:
        call = dat.create_collection(name, embedding_model, chunk_tokens, chunk_overlap, description)
        return self._r.run(call)

    def list_collections(self) -> list[dat.CollectionInfo]:
        return self._r.run(dat.list_collections())

    def get_collection(self, name: str) -> dat.CollectionInfo:
        return self._r.run(dat.get_collection(name))

    def delete_collection(self, name: str) -> None:
        self._r.run(dat.delete_collection(name))

    def add_document(
        self,
        collection: str,
        source: dat.Source,
        *,
        name: str | None = None,
        content_type: str | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> dat.DocumentInfo:
        """Upload a file (or bytes) into ``collection``; the same name again is a new version."""
        return self._r.run(dat.add_document(collection, source, name, content_type, metadata))

    def list_documents(
        self, collection: str, *, name: str | None = None, all_versions: bool = False
    ) -> list[dat.DocumentInfo]:
        return self._r.run(dat.list_documents(collection, name, all_versions))

    def delete_document(self, collection: str, document_id: int) -> dat.DocumentInfo:
        """Delete one version."""
        return self._r.run(dat.delete_document(collection, document_id))

    def delete_documents(self, collection: str, name: str) -> list[dat.DocumentInfo]:
        """Delete every version of ``name``."""
        return self._r.run(dat.delete_documents(collection, name))

    def search(
        self,
        collections: str | Sequence[str],
        query: str,
        *,
        top_k: int = 5,
        mode: str = "hybrid",
        filters: Mapping[str, Any] | None = None,
    ) -> list[dat.SearchHit]:
        """Ranked chunks (``mode``: hybrid, vector or keyword) of one collection or several."""
        return self._r.run(dat.search(collections, query, top_k, mode, filters))

    def ask(
        self,
        model: str,
        question: str | Sequence[Mapping[str, Any]],
        collections: Sequence[str],
        *,
        top_k: int = 4,
        **params: Any,
    ) -> dat.Answer:
        """Chat with ``model`` over ``collections``: the best passages go into the prompt and come
        back as ``citations`` (``params``: max_tokens, temperature, ...)."""
        return self._r.run(dat.ask(model, question, collections, top_k, params))

    def upload_dataset(self, name: str, source: dat.Source) -> dat.DatasetInfo:
        """Upload JSONL (chat or prompt/completion form); BadRequestError lists the bad lines."""
        return self._r.run(dat.upload_dataset(name, source))

    def list_datasets(self) -> list[dat.DatasetInfo]:
        return self._r.run(dat.list_datasets())

    def delete_dataset(self, dataset_id: int) -> dat.DatasetInfo:
        return self._r.run(dat.delete_dataset(dataset_id))


class Tasks:
    """``client.tasks``: ``run(task, text, ...)`` or one method per task; every answer's
    ``output`` is valid against the task's schema. ``options``: model, input_format,
    max_input_chars, max_tokens, temperature, seed."""

    def __init__(self, runner: Runner) -> None:
        self._r = runner

    def list(self) -> builtins.list[dict[str, Any]]:
        """The tasks the server runs: name, description, params."""
        return self._r.run(tsk.list_tasks())

    def run(
        self, task: str, text: str, *, params: dict[str, Any] | None = None, **options: Any
    ) -> tsk.TaskResult:
        """Run ``task`` on ``text``. Raises NotFoundError (no such task or model), BadRequestError."""
        return self._r.run(tsk.run(task, text, params, options))

    def summarize(self, text: str, *, max_words: int | None = None, **options: Any) -> tsk.TaskResult:
        return self._r.run(tsk.summarize(text, max_words, options))

    def translate(
        self, text: str, target_language: str, *, source_language: str | None = None, **options: Any
    ) -> tsk.TaskResult:
        return self._r.run(tsk.translate(text, target_language, source_language, options))

    def classify(
        self, text: str, labels: Sequence[str], *, multi_label: bool = False, **options: Any
    ) -> tsk.TaskResult:
        return self._r.run(tsk.classify(text, labels, multi_label, options))

    def sentiment(self, text: str, **options: Any) -> tsk.TaskResult:
        return self._r.run(tsk.sentiment(text, options))

    def extract_entities(
        self,
        text: str,
        *,
        types: Sequence[str] | None = None,
        max_entities: int | None = None,
        **options: Any,
    ) -> tsk.TaskResult:
        return self._r.run(tsk.extract_entities(text, types, max_entities, options))


class Conversations:
    """``client.conversations``: memory kept by the server, per tenant."""

    def __init__(self, runner: Runner) -> None:
        self._r = runner

    def create(
        self,
        *,
        title: str = "",
        metadata: dict[str, Any] | None = None,
        messages: Iterable[dict[str, Any]] = (),
    ) -> conv.Conversation:
        return self._r.run(conv.create(title, metadata, messages))

    def get(self, conversation_id: str) -> conv.Conversation:
        """The conversation with every message. Raises NotFoundError (also for another tenant's)."""
        return self._r.run(conv.get(conversation_id))

    def list(self, *, limit: int = 50, offset: int = 0) -> builtins.list[conv.Conversation]:
        """This tenant's conversations, most recently updated first."""
        return self._r.run(conv.list_page(offset, limit))

    def iter(self, *, page_size: int = 100) -> Iterator[conv.Conversation]:
        """Every conversation of this tenant, most recently updated first, fetched page by page."""
        return self._r.pages(conv.every(page_size))

    def append(
        self, conversation_id: str, messages: Iterable[dict[str, Any]]
    ) -> builtins.list[conv.StoredMessage]:
        """Append messages at the end; returns them with their positions."""
        return self._r.run(conv.append(conversation_id, messages))

    def update(
        self, conversation_id: str, *, title: str | None = None, metadata: dict[str, Any] | None = None
    ) -> conv.Conversation:
        return self._r.run(conv.update(conversation_id, title, metadata))

    def delete(self, conversation_id: str) -> None:
        self._r.run(conv.delete(conversation_id))


class FineTuning:
    """``client.fine_tuning``: LoRA fine-tuning jobs scheduled by the server (OpenAI's
    fine-tuning API); a succeeded job's ``fine_tuned_model`` is a model like any other."""

    def __init__(self, runner: Runner) -> None:
        self._r = runner

    def upload(self, source: ft.Source, *, name: str | None = None) -> str:
        """Upload a JSONL file (a path or bytes) for fine-tuning; its ``file-…`` id. Raises
        BadRequestError naming the bad lines."""
        return self._r.run(ft.upload(source, name))

    def create(
        self,
        model: str,
        data: ft.Source,
        *,
        validation: ft.Source | None = None,
        epochs: int | None = None,
        merge: bool = False,
        suffix: str | None = None,
        hyperparameters: Mapping[str, Any] | None = None,
    ) -> ft.FineTuningJob:
        """Upload the data (a ``file-…`` id is used as is) and queue a job on ``model``.
        ``merge``: the result is a full merged GGUF instead of a LoRA adapter on the base."""
        training = data if ft.is_file_id(data) else self._r.run(ft.upload(data, None))
        checked = None
        if validation is not None:
            checked = validation if ft.is_file_id(validation) else self._r.run(ft.upload(validation, None))
        hp = ft.hyperparameters(epochs, merge, hyperparameters)
        return self._r.run(ft.create(model, training, checked, hp, suffix))

    def list(self, *, limit: int = 20) -> builtins.list[ft.FineTuningJob]:
        """Your tenant's jobs, newest first."""
        return self._r.run(ft.list_jobs(limit))

    def get(self, job_id: str) -> ft.FineTuningJob:
        """Raises NotFoundError (also for another tenant's job)."""
        return self._r.run(ft.get(job_id))

    def cancel(self, job_id: str) -> ft.FineTuningJob:
        """Cancel a queued or running job: it registers nothing and leaves no files."""
        return self._r.run(ft.cancel(job_id))

    def events(self, job_id: str, *, limit: int = 100) -> builtins.list[ft.FineTuningEvent]:
        """The newest ``limit`` events, oldest first."""
        return self._r.run(ft.events(job_id, limit))

    def checkpoints(self, job_id: str, *, limit: int = 10) -> builtins.list[ft.FineTuningCheckpoint]:
        return self._r.run(ft.checkpoints(job_id, limit))

    def follow(self, job_id: str) -> Iterator[ft.FineTuningEvent]:
        """Every event as it is written, oldest first, until the job ends."""
        return self._r.stream(ft.follow(job_id))
