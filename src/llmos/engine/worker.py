"""Worker processes: each loaded model runs any :class:`~llmos.engine.base.Engine` backend in
its own OS process, driven by :class:`WorkerEngine` through typed messages over a pipe.

- A crash of the worker (segfault, OOM kill, SIGKILL) makes the pending or next call raise
  :class:`~llmos.errors.EngineDeadError` within about ``poll_interval`` seconds; the parent
  survives and can start a fresh ``WorkerEngine``.
- A dying parent takes its workers with it: the child asks the kernel for SIGKILL when its
  parent dies (``PR_SET_PDEATHSIG``, Linux) and also runs a watchdog thread that exits when its
  parent pid changes, and the main loop exits when the pipe closes. Because PDEATHSIG fires when
  the *thread* that started the worker exits, start workers from a long-lived thread.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import importlib
import logging
import multiprocessing
import os
import signal
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import Any, TypeVar

from llmos import errors
from llmos.engine.base import (
    Admission,
    Engine,
    EngineHealth,
    EngineInfo,
    LoadSpec,
    SeqSnapshot,
    SeqStatus,
    SequenceSpec,
    StepPlan,
    StepResult,
)
from llmos.engine.messages import (
    AbortRequest,
    AdmissionReply,
    AdmitRequest,
    BoolReply,
    CanAdmitRequest,
    DetokenizeRequest,
    DoneReply,
    EmbedReply,
    EmbedRequest,
    ErrorReply,
    HealthReply,
    HealthRequest,
    InfoReply,
    LoadRequest,
    PreemptRequest,
    RenderChatRequest,
    Reply,
    Request,
    RestoreRequest,
    SequencesReply,
    SequencesRequest,
    ShutdownRequest,
    SnapshotReply,
    StepReply,
    StepRequest,
    TextReply,
    TokenizeRequest,
    TokensReply,
    UnloadRequest,
    freeze_inputs,
)
from llmos.errors import EngineDeadError, EngineError, InvalidRequest
from llmos.types import ChatMessage, SeqId, TokenId

logger = logging.getLogger(__name__)

BACKENDS: dict[str, str] = {
    "llamacpp": "llmos.engine.llamacpp:LlamaCppEngine",
    "fake": "llmos.engine.fake:FakeEngine",
    "sentence_transformers": "llmos.engine.sentence_transformers_engine:SentenceTransformersEngine",
}
"""Backend name → ``module:Class`` of an :class:`Engine` with a no-argument constructor."""

PR_SET_PDEATHSIG = 1


def make_engine(backend: str) -> Engine:
    """Instantiate a backend by name; raises InvalidRequest for an unknown one."""
    target = BACKENDS.get(backend)
    if target is None:
        raise InvalidRequest(
            f"unknown engine backend {backend!r}; known: {sorted(BACKENDS)}", param="backend"
        )
    module_name, _, class_name = target.partition(":")
    factory: Callable[[], Engine] = getattr(importlib.import_module(module_name), class_name)
    return factory()


# --- the child side ---------------------------------------------------------------------------------


def _die_with_parent(parent_pid: int) -> None:
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):
        logger.warning("PR_SET_PDEATHSIG unavailable; relying on the watchdog thread")
    if os.getppid() != parent_pid:  # the parent died before prctl took effect
        os._exit(1)

    def watchdog() -> None:
        while True:
            if os.getppid() != parent_pid:
                os._exit(1)
            time.sleep(0.2)

    threading.Thread(target=watchdog, name="llmos-worker-watchdog", daemon=True).start()


def _handle(engine: Engine, msg: Request) -> Reply:
    if isinstance(msg, StepRequest):
        return StepReply(engine.step(msg.plan))
    if isinstance(msg, AdmitRequest):
        return AdmissionReply(engine.admit(msg.spec))
    if isinstance(msg, CanAdmitRequest):
        return BoolReply(engine.can_admit(msg.n_prompt_tokens))
    if isinstance(msg, AbortRequest):
        engine.abort(msg.seq_id)
        return DoneReply()
    if isinstance(msg, TokenizeRequest):
        return TokensReply(
            tuple(engine.tokenize(msg.text, add_special=msg.add_special, parse_special=msg.parse_special))
        )
    if isinstance(msg, DetokenizeRequest):
        return TextReply(engine.detokenize(msg.tokens))
    if isinstance(msg, RenderChatRequest):
        text = engine.render_chat(
            msg.messages, add_generation_prompt=msg.add_generation_prompt, tools=msg.tools
        )
        return TextReply(text)
    if isinstance(msg, PreemptRequest):
        return SnapshotReply(engine.preempt(msg.seq_id))
    if isinstance(msg, RestoreRequest):
        return AdmissionReply(engine.restore(msg.snapshot))
    if isinstance(msg, SequencesRequest):
        return SequencesReply(tuple(engine.sequences()))
    if isinstance(msg, EmbedRequest):
        vectors = engine.embed(msg.inputs, normalize=msg.normalize)
        return EmbedReply(tuple(tuple(v) for v in vectors))
    if isinstance(msg, HealthRequest):
        return HealthReply(engine.health())
    if isinstance(msg, LoadRequest):
        return InfoReply(engine.load(msg.spec))
    if isinstance(msg, UnloadRequest | ShutdownRequest):
        engine.unload()
        return DoneReply()
    raise InvalidRequest(f"unknown message {type(msg).__name__}")


def _error_reply(exc: BaseException) -> ErrorReply:
    if isinstance(exc, errors.LLMOSError):
        return ErrorReply(
            error_type=type(exc).__name__,
            message=exc.message,
            param=exc.param,
            retry_after=getattr(exc, "retry_after", None),
        )
    return ErrorReply(error_type="EngineGenerateError", message=f"{type(exc).__name__}: {exc}")


def worker_main(conn: Connection, backend: str, parent_pid: int) -> None:
    """Entry point of the worker process: serve requests until shutdown or the pipe closes."""
    _die_with_parent(parent_pid)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when we stop
    engine = make_engine(backend)
    while True:
        try:
            msg = conn.recv()
        except (EOFError, OSError):
            break
        try:
            reply = _handle(engine, msg)
        except Exception as exc:  # every failure goes back to the caller as a typed reply
            reply = _error_reply(exc)
        try:
            conn.send(reply)
        except (BrokenPipeError, OSError):
            break
        if isinstance(msg, ShutdownRequest):
            break
    try:
        engine.unload()
    except Exception:  # best effort on the way out
        logger.debug("unload on exit failed", exc_info=True)


# --- the parent side --------------------------------------------------------------------------------

R = TypeVar("R")


def _rebuild_error(reply: ErrorReply) -> errors.LLMOSError:
    cls = getattr(errors, reply.error_type, None)
    if not (isinstance(cls, type) and issubclass(cls, errors.LLMOSError)):
        return errors.EngineGenerateError(reply.message, param=reply.param)
    if issubclass(cls, errors.RateLimited | errors.Overloaded):
        return cls(reply.message, retry_after=reply.retry_after or 0.0, param=reply.param)
    return cls(reply.message, param=reply.param)


class WorkerEngine:
    """An :class:`Engine` whose backend runs in a child process (one model per process).

    Each protocol call is one request/reply round trip. When the child dies, the pending and
    every later call raise :class:`EngineDeadError` (``health()`` reports not ok instead); make a
    new ``WorkerEngine`` to start over.
    """

    def __init__(
        self,
        backend: str,
        *,
        start_method: str = "spawn",
        poll_interval: float = 0.05,
        shutdown_timeout: float = 5.0,
    ) -> None:
        if backend not in BACKENDS:
            raise InvalidRequest(
                f"unknown engine backend {backend!r}; known: {sorted(BACKENDS)}", param="backend"
            )
        self.backend = backend
        self._mp: Any = multiprocessing.get_context(start_method)
        self._poll = poll_interval
        self._shutdown_timeout = shutdown_timeout
        self._proc: BaseProcess | None = None
        self._conn: Connection | None = None
        self._info: EngineInfo | None = None
        self._dead: str | None = None

    # --- process management -------------------------------------------------------------------------

    def start(self) -> None:
        """Start the worker process (``load`` does it if needed)."""
        if self._proc is not None:
            return
        parent_conn, child_conn = self._mp.Pipe(duplex=True)
        proc = self._mp.Process(
            target=worker_main,
            args=(child_conn, self.backend, os.getpid()),
            name=f"llmos-worker-{self.backend}",
            daemon=True,
        )
        proc.start()
        child_conn.close()
        self._proc, self._conn = proc, parent_conn
        logger.info("started %s worker pid %s", self.backend, proc.pid)

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def is_alive(self) -> bool:
        return self._dead is None and self._proc is not None and self._proc.is_alive()

    def _die(self, why: str) -> EngineDeadError:
        proc = self._proc
        code = proc.exitcode if proc is not None else None
        if proc is not None and code is None:
            proc.join(0.2)
            code = proc.exitcode
        self._dead = f"engine worker (pid {self.pid}) died: {why}" + (
            f" (exit code {code})" if code is not None else ""
        )
        if self._conn is not None:
            self._conn.close()
            self._conn = None
        logger.error("%s", self._dead)
        return EngineDeadError(self._dead)

    def _call(self, request: Request, expect: type[R]) -> R:
        if self._dead is not None:
            raise EngineDeadError(self._dead)
        if self._proc is None:
            self.start()
        conn, proc = self._conn, self._proc
        if conn is None or proc is None:
            raise EngineDeadError("engine worker is not running")
        try:
            conn.send(request)
        except (BrokenPipeError, ConnectionResetError, OSError) as exc:
            raise self._die(f"pipe broken ({exc})") from exc
        while True:
            try:
                ready = conn.poll(self._poll)
            except (EOFError, OSError) as exc:
                raise self._die("pipe closed") from exc
            if ready:
                try:
                    reply = conn.recv()
                except (EOFError, ConnectionResetError, OSError) as exc:
                    raise self._die("pipe closed") from exc
                break
            if not proc.is_alive():
                raise self._die("process exited")
        if isinstance(reply, ErrorReply):
            raise _rebuild_error(reply)
        if not isinstance(reply, expect):
            raise EngineError(f"worker answered {type(reply).__name__} to {type(request).__name__}")
        return reply

    def close(self) -> None:
        """Unload and stop the worker (kill it if it does not stop in time). Idempotent."""
        proc = self._proc
        if proc is None:
            return
        if self._dead is None and proc.is_alive():
            with contextlib.suppress(errors.LLMOSError):
                self._call(ShutdownRequest(), DoneReply)
            proc.join(self._shutdown_timeout)
        if proc.is_alive():
            proc.kill()
            proc.join(self._shutdown_timeout)
        if self._conn is not None:
            self._conn.close()
            self._conn = None
        if self._dead is None:
            self._dead = "engine worker was closed"

    def __enter__(self) -> WorkerEngine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- the Engine protocol ------------------------------------------------------------------------

    def load(self, spec: LoadSpec) -> EngineInfo:
        self._info = self._call(LoadRequest(spec), InfoReply).info
        return self._info

    @property
    def info(self) -> EngineInfo:
        if self._info is None:
            raise EngineError("no model loaded")
        return self._info

    def tokenize(self, text: str, *, add_special: bool = True, parse_special: bool = True) -> list[TokenId]:
        return list(self._call(TokenizeRequest(text, add_special, parse_special), TokensReply).tokens)

    def detokenize(self, tokens: Sequence[TokenId]) -> str:
        return self._call(DetokenizeRequest(tuple(tokens)), TextReply).text

    def render_chat(
        self,
        messages: Sequence[ChatMessage],
        *,
        add_generation_prompt: bool = True,
        tools: Sequence[Mapping[str, Any]] | None = None,
    ) -> str:
        request = RenderChatRequest(
            tuple(messages), add_generation_prompt, tuple(tools) if tools is not None else None
        )
        return self._call(request, TextReply).text

    def can_admit(self, n_prompt_tokens: int) -> bool:
        return self._call(CanAdmitRequest(n_prompt_tokens), BoolReply).value

    def admit(self, spec: SequenceSpec) -> Admission:
        return self._call(AdmitRequest(spec), AdmissionReply).admission

    def step(self, plan: StepPlan | None = None) -> StepResult:
        return self._call(StepRequest(plan), StepReply).result

    def abort(self, seq_id: SeqId) -> None:
        self._call(AbortRequest(seq_id), DoneReply)

    def preempt(self, seq_id: SeqId) -> SeqSnapshot:
        return self._call(PreemptRequest(seq_id), SnapshotReply).snapshot

    def restore(self, snapshot: SeqSnapshot) -> Admission:
        return self._call(RestoreRequest(snapshot), AdmissionReply).admission

    def sequences(self) -> list[SeqStatus]:
        return list(self._call(SequencesRequest(), SequencesReply).sequences)

    def embed(
        self, inputs: Sequence[str | Sequence[TokenId]], *, normalize: bool = True
    ) -> list[list[float]]:
        reply = self._call(EmbedRequest(freeze_inputs(inputs), normalize), EmbedReply)
        return [list(v) for v in reply.vectors]

    def health(self) -> EngineHealth:
        if self._dead is not None:
            return EngineHealth(ok=False, detail=self._dead, pid=self.pid or 0)
        if self._proc is None:
            return EngineHealth(ok=False, detail="engine worker not started")
        try:
            return self._call(HealthRequest(), HealthReply).health
        except EngineDeadError as exc:
            return EngineHealth(ok=False, detail=exc.message, pid=self.pid or 0)

    def unload(self) -> None:
        if self._dead is None and self._proc is not None:
            self._call(UnloadRequest(), DoneReply)
        self._info = None
