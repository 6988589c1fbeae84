"""Process facts shared by every layer (imports nothing else of llmos)."""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import logging
import os
import signal
import threading
import time

logger = logging.getLogger(__name__)

PR_SET_PDEATHSIG = 1


def pid_alive(pid: int) -> bool:
    """Whether a process with this id exists (this process counts as alive; one we may not
    signal exists too). Used to tell a dead writer's temp files from a live one's."""
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def describe_exit(code: int) -> str:
    """A child's exit code for error messages: ``killed by SIGKILL``, ``exit code 1``."""
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"exit code {code}"
    return f"exit code {code}"


def die_with_parent(parent_pid: int) -> None:
    """In a child process: exit when ``parent_pid`` dies (``PR_SET_PDEATHSIG`` on Linux, and a
    watchdog thread that notices the parent pid change wherever that is unavailable)."""
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

    threading.Thread(target=watchdog, name="llmos-watchdog", daemon=True).start()


def freeze_startup_objects() -> None:
    """Move every object alive now (modules, the app, the loaded model's bookkeeping) out of the
    garbage collector's sight: a long-running process then pays for its full collections only
    over what it allocated since, not the ~170,000 objects of the server's startup (a full
    collection of those stalls every stream of the process for ~45 ms). Later garbage is
    collected as before; the frozen objects live as long as the process does. For processes
    that serve until they exit (``llmos serve``, an engine core), not for a library's caller."""
    gc.collect()
    gc.freeze()
