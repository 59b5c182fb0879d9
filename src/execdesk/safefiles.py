"""Small file-system helpers the roles share: whether the process that left a temporary file is still alive."""

from __future__ import annotations

import os


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` runs (another user's counts as running; this process's own pid as not, since what
    it left behind it is not writing any more)."""
    if pid <= 0 or pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
