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

    def acquire(self) -> bool:
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
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd
        return True

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
        return f"pid {pid}" if pid else "pid unknown"
