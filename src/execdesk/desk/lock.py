"""One desk process per home: ``HOME/desk.lock``, an exclusive ``flock`` held by the running desk (or by a command
writing a stopped desk's ledger); commands on a stopped desk also take ``HOME/command.lock``, so they run one after
the other."""

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
        self._command_fd: int | None = None  # HOME/command.lock, while a command holds the home

    def acquire(self, role: str = "desk") -> bool:
        """Take the lock if it is free (``role``: ``desk`` for a run, ``command`` for a command on a stopped desk,
        written beside the pid)."""
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
        """The lock for a command on a stopped desk. Commands run one after the other, each seeing what the one
        before recorded: first ``HOME/command.lock`` is taken (waited for, up to ``wait_s``, while another command
        holds it), then ``desk.lock``; when that is held, only a running desk can hold it (every command takes
        ``command.lock`` first): False, and the command queues a request for the desk instead."""
        import fcntl
        import os
        import time

        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path.with_name("command.lock"), os.O_RDWR | os.O_CREAT, 0o600)
        deadline = time.monotonic() + wait_s
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    os.close(fd)
                    raise InvalidInput(f"{self.path.parent}: another command has held the home for {wait_s:.0f} s; "
                                       "try again") from None
                time.sleep(0.01)
        if not self.acquire("command"):
            os.close(fd)  # (closing drops the flock)
            return False
        self._command_fd = fd
        return True

    def release(self) -> None:
        import fcntl
        import os

        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None
        if self._command_fd is not None:
            os.close(self._command_fd)  # (closing drops the flock)
            self._command_fd = None

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
