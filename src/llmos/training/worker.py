"""A training job's process: runs :func:`llmos.training.trainer.train` and talks to the manager
over a pipe (controls in, progress out).

Like an engine core (:mod:`llmos.core.hosts`), the process is started with ``spawn`` from a
thread that lives exactly as long as the job, asks the kernel for SIGKILL when its parent dies,
and ignores SIGINT (the manager decides when it stops). Whatever ends the training — success,
a bad dataset, an exception in torch, a cancel — is reported as one last message; a crash that
sends nothing (segfault, OOM kill) is seen by the manager as the pipe closing.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import signal
import traceback
from multiprocessing.connection import Connection
from typing import Any

from llmos.errors import LLMOSError
from llmos.procs import describe_exit, die_with_parent
from llmos.training.messages import Control, Failed, TrainerMessage, TrainRequest

log = logging.getLogger(__name__)


class PipeController:
    """The trainer's view of the manager: reads controls between optimizer steps."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn
        self.paused = False

    def between_steps(self) -> None:
        from llmos.training.trainer import Cancelled

        while self._conn.poll(0) or self.paused:
            try:
                msg: Control = self._conn.recv()
            except EOFError:
                raise Cancelled("the manager went away") from None
            if msg.command == "cancel":
                raise Cancelled("cancelled")
            if msg.command == "pause":
                self.paused = True
            elif msg.command == "resume":
                self.paused = False
            elif msg.command == "threads" and msg.value > 0:
                import torch

                torch.set_num_threads(msg.value)


def job_main(conn: Connection, parent_pid: int, request: TrainRequest) -> None:
    """Entry point of a job's process."""
    die_with_parent(parent_pid)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    from llmos.training.trainer import Cancelled, train

    def emit(message: TrainerMessage) -> None:
        conn.send(message)

    try:
        train(request, PipeController(conn), emit)
    except Cancelled:
        emit(Failed("cancelled"))
    except LLMOSError as exc:
        emit(Failed(exc.message))
    except MemoryError:
        emit(Failed("out of memory while training; lower batch_size or max_seq_len"))
    except Exception as exc:
        log.error("training job %s failed:\n%s", request.job_id, traceback.format_exc())
        emit(Failed(f"{type(exc).__name__}: {exc}"))
    finally:
        conn.close()


class JobProcess:
    """One job's process and the manager's end of its pipe."""

    def __init__(self, request: TrainRequest, *, start_method: str = "spawn") -> None:
        self.request = request
        ctx: Any = multiprocessing.get_context(start_method)
        self.conn, child = ctx.Pipe(duplex=True)
        self._proc = ctx.Process(
            target=job_main,
            args=(child, os.getpid(), request),
            name=f"llmos-train-{request.job_id}",
            daemon=True,
        )
        self._proc.start()
        child.close()

    @property
    def pid(self) -> int | None:
        return int(self._proc.pid) if self._proc.pid is not None else None

    def recv(self) -> TrainerMessage:
        """The next message from the job; raises EOFError once the process is gone."""
        msg: TrainerMessage = self.conn.recv()
        return msg

    def send(self, control: Control) -> None:
        with contextlib.suppress(OSError):  # the process ended; recv reports how
            self.conn.send(control)

    def exit_detail(self) -> str:
        self._proc.join(1.0)
        code = self._proc.exitcode
        if code is None:
            return "still running"
        return describe_exit(code)

    def stop(self, timeout: float) -> None:
        """Wait up to ``timeout`` for the process to end, then kill it. Idempotent."""
        self._proc.join(timeout)
        if self._proc.is_alive():
            self._proc.kill()
            self._proc.join(5.0)
        self.conn.close()
