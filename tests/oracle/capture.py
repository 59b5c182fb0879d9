"""Capture every desk config the test suite runs (a pytest plugin, used to build the oracle once):

    EXECDESK_ORACLE_CAPTURE=/tmp/capture pytest -p tests.oracle.capture

Each ``run_desk`` on a fresh home (no ledger before it, no custom clock) is written to the capture folder as
``NNNN.json``: the test that ran it, the config as recorded, the bundle files' texts and the digest of the
stream after the run."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

_CURRENT: dict[str, str] = {}


def pytest_configure(config: pytest.Config) -> None:
    out = os.environ.get("EXECDESK_ORACLE_CAPTURE")
    if not out:
        return
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    import execdesk.desk.runner as desk_module

    original = desk_module.run_desk

    def capturing(desk_config: Any, home: Path, progress: Any = None, clock: Any = None,
                  db_url: str | None = None) -> Any:
        fresh = clock is None and db_url is None and not (home / "ledger.sqlite").exists()
        summary = original(desk_config, home, progress=progress, clock=clock, db_url=db_url)
        if fresh:
            from tests.oracle.streams import stream_digest

            bundles = {str(s.bundle): Path(s.bundle).read_text() for s in desk_config.strategies}
            number = len(list(folder.glob("*.json"))) + 1
            (folder / f"{number:04d}.json").write_text(json.dumps({
                "test": _CURRENT.get("test"), "home": str(home.resolve()), "config": desk_config.canonical(),
                "bundles": bundles, "digest": stream_digest(home)}, indent=1, sort_keys=True))
        return summary

    desk_module.run_desk = capturing


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    _CURRENT["test"] = item.nodeid
