"""The API's fixtures: one seeded demo home per test process (the bundled demo, ~30 s), copied for each test that
changes it; tokens of each role."""

from __future__ import annotations

import shutil
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from execdesk.api.tokens import TokenStore
from execdesk.desk.identity import Role, local_identity

ROLES = tuple(r.value for r in Role)


@pytest.fixture(scope="session")
def demo_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo (seed 7) run once: four deployments, the circuit breaker tripped, the desk HALTED. Read only."""
    from execdesk.api import actions

    root = tmp_path_factory.mktemp("api-demo")
    actions.run_demo(root, seed=7)
    return root / "demo" / "seed-7"


@pytest.fixture
def home(demo_home: Path, tmp_path: Path) -> Path:
    """A copy of the demo home this test may change."""
    target = tmp_path / "home"
    shutil.copytree(demo_home, target, symlinks=True)
    return target


def make_tokens(home: Path, *names: str) -> dict[str, str]:
    """A token per role (named after it), or per ``name:role`` given."""
    store = TokenStore(home)
    out = {}
    for spec in names or ROLES:
        name, _, role = spec.partition(":")
        out[name] = store.create(name, role or name, local_identity())[0]
    return out


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@contextmanager
def serving(home: Path) -> Iterator[str]:
    """``create_app(home)`` in uvicorn on a thread, on a free port of 127.0.0.1; its base URL."""
    import uvicorn

    from execdesk.api.service import create_app

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    server = uvicorn.Server(uvicorn.Config(create_app(home), host="127.0.0.1", port=port, log_level="warning",
                                           timeout_graceful_shutdown=2))
    thread = threading.Thread(target=server.run, name="api-server", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive(), "the service stopped as it started"
        assert time.monotonic() < deadline, "the service did not start in 30 s"
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(30)
