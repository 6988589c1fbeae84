"""Process facts shared by every layer (imports nothing else of llmos)."""

from __future__ import annotations

import os


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
