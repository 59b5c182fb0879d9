"""A real PostgreSQL server for the tests that need one: Debian's binaries (``scripts/postgres.sh`` installs them
for CI), a throwaway cluster on 127.0.0.1 and a free port, a fresh database per test. As root (a container, CI)
the server runs as the ``postgres`` user, which PostgreSQL requires."""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from itertools import count
from pathlib import Path

import pytest


def binaries() -> Path | None:
    """The folder of ``initdb`` and ``pg_ctl``: on PATH, else Debian's newest ``/usr/lib/postgresql/N/bin``."""
    found = shutil.which("initdb")
    if found:
        return Path(found).resolve().parent
    versions = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parts[-3]))
    return Path(versions[-1]).parent if versions else None


class PostgresServer:
    """One running cluster; :meth:`database` makes a fresh, empty database and returns its URL."""

    def __init__(self, bin_dir: Path, root: Path, port: int, as_user: list[str]) -> None:
        self.bin_dir, self.root, self.port, self._as = bin_dir, root, port, as_user
        self._n = count(1)

    def _run(self, *args: str) -> None:
        subprocess.run([*self._as, *args], check=True, capture_output=True, text=True, timeout=120,
                       env={"PATH": os.environ.get("PATH", ""), "LC_ALL": "C"})

    def database(self) -> str:
        import psycopg

        name = f"t{os.getpid()}_{next(self._n)}"
        with psycopg.connect(f"host=127.0.0.1 port={self.port} user=postgres dbname=postgres",
                             autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return f"postgresql://postgres@127.0.0.1:{self.port}/{name}"


@contextmanager
def postgres_server() -> Iterator[PostgresServer]:
    """Start a throwaway cluster (trust authentication on loopback only), stop and remove it after."""
    bin_dir = binaries()
    if bin_dir is None:
        message = "no PostgreSQL server binaries (Debian: apt-get install postgresql; scripts/postgres.sh)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    root = Path(tempfile.mkdtemp(prefix="execdesk-pg-"))  # not pytest's 0700 folders: the server's user reads it
    as_user: list[str] = []
    if os.geteuid() == 0:
        shutil.chown(root, "postgres")
        as_user = ["runuser", "-u", "postgres", "--"]
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    server = PostgresServer(bin_dir, root, port, as_user)
    data = root / "data"
    server._run(str(bin_dir / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres", "-E", "UTF8",
                "--locale=C", "--no-sync")
    server._run(str(bin_dir / "pg_ctl"), "-D", str(data), "-l", str(root / "server.log"), "-w", "-t", "60", "-o",
                f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off", "start")
    try:
        yield server
    finally:
        subprocess.run([*as_user, str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"],
                       capture_output=True, timeout=60)
        shutil.rmtree(root, ignore_errors=True)
