"""One desk process per home: ``HOME/desk.lock``, an exclusive ``flock`` held by the running desk."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from execdesk.errors import InvalidInput


class DeskLock:
    """``HOME/desk.lock``: held (``flock``, exclusive) by the process running the desk, released when it
    ends — also by a crash, since the kernel drops the lock with the process."""

    def __init__(self, home: Path) -> None:
        self.path = home / "desk.lock"
        self._fd: int | None = None

    def acquire(self, role: str = "desk") -> bool:
        """Take the lock if it is free (``role``: ``desk`` for a run, ``command`` for a command on a stopped desk,
        written beside the pid for the next one to see)."""
        import fcntl
        import os

        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()} {role}\n".encode())
        self._fd = fd
        return True

    def acquire_for_command(self, wait_s: float = 60.0) -> bool:
        """The lock for a command: taken when free; while another *command* holds it, waited for (up to
        ``wait_s``: commands on a stopped desk run one after the other, each seeing what the one before recorded);
        False when a desk runs (the command queues a request for it instead)."""
        import time

        deadline = time.monotonic() + wait_s
        while not self.acquire("command"):
            if self.role() != "command" or time.monotonic() > deadline:
                return False
            time.sleep(0.02)
        return True

    def role(self) -> str:
        """``desk`` or ``command``: what holds the lock (a lock being taken this instant reads as ``desk``)."""
        try:
            parts = self.path.read_text().split()
        except OSError:
            return "desk"
        return parts[1] if len(parts) > 1 and parts[1] in ("desk", "command") else "desk"

    def release(self) -> None:
        import fcntl
        import os

        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    @classmethod
    @contextmanager
    def for_run(cls, home: Path) -> Iterator[DeskLock]:
        """Held for a desk's run; :class:`InvalidInput` when another process runs a desk in ``home``."""
        lock = cls(home)
        if not lock.acquire():
            raise InvalidInput(f"{home}: a desk is running in this home already ({lock.holder()}); one desk per home")
        try:
            yield lock
        finally:
            lock.release()

    def holder(self) -> str:
        try:
            pid = self.path.read_text().strip()
        except OSError:
            return "pid unknown"
        return f"pid {pid.split()[0]}" if pid else "pid unknown"
