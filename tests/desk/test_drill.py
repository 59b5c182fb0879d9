"""What the crash drill compares (execdesk.desk.drill): two homes agree unless an event or a file differs — the
restart's own records and the databases aside."""

from __future__ import annotations

import shutil
from pathlib import Path

from execdesk.desk.drill import differences
from execdesk.domain.events import Event, EventKind
from execdesk.store.ledger import Ledger


def _home(path: Path, *, restarted: bool = False, adopted: bool = False, price: str = "100") -> Path:
    with Ledger.for_home(path) as ledger:
        ledger.record(Event(1, EventKind.RUN_STARTED, {"from_bar": 0}))
        if restarted:
            ledger.record(Event(2, EventKind.RUN_STARTED, {"from_bar": 5}))
            ledger.record(Event(2, EventKind.RECONCILED, {"clean": True}))
        ledger.record(Event(3, EventKind.ALERT_RAISED, {"code": "x", "price": price,
                                                         **({"adopted": True} if adopted else {})}))
    (path / "alerts.jsonl").write_text('{"id": "a"}\n')
    return path


def test_differences_when_only_the_restarts_own_records_differ_then_none(tmp_path: Path) -> None:
    assert differences(_home(tmp_path / "a"), _home(tmp_path / "b", restarted=True)) == []


def test_differences_when_an_event_or_a_file_differs_then_each_is_named(tmp_path: Path) -> None:
    a = _home(tmp_path / "a")
    b = _home(tmp_path / "b", price="101")
    (b / "alerts.jsonl").write_text('{"id": "b"}\n')
    (b / "extra.txt").write_text("x")
    found = differences(a, b)
    assert any(f.startswith("event 0:") and '"price":"101"' in f for f in found)
    assert "file alerts.jsonl: differs" in found
    assert "file extra.txt: extra" in found
    shutil.rmtree(b)
