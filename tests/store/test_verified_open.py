"""A ledger is verified when it is opened: an edited, removed or appended event, or a schema from a newer
execdesk, is refused with exit 2 naming the event or the revision, and nothing trades on it; ``execdesk verify``
also compares the projection tables with the fold of the events."""

from __future__ import annotations

import json
import shutil
import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import CliRunner

from execdesk.cli import app
from execdesk.desk.runner import run_desk
from execdesk.desk.settings import load_desk_config

runner = CliRunner()


@pytest.fixture(scope="module")
def traded_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small desk run once (two strategies, orders and fills in its ledger)."""
    import yaml

    from tests.conftest import small_desk

    root = tmp_path_factory.mktemp("traded")
    config = root / "desk.yaml"
    config.write_text(yaml.safe_dump(small_desk(root, market__end="2024-03-20T00:00:00Z")))
    run_desk(load_desk_config(config), root / "home")
    return root / "home"


@pytest.fixture
def home(traded_home: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "home"
    shutil.copytree(traded_home, copy)
    return copy


def _sql(home: Path, statement: str, *args: object) -> None:
    with sqlite3.connect(home / "ledger.sqlite") as db:
        db.execute(statement, args)


def _first(home: Path, kind: str) -> tuple[int, dict[str, object]]:
    with sqlite3.connect(home / "ledger.sqlite") as db:
        seq, payload = db.execute("SELECT seq, payload FROM events WHERE kind = ? ORDER BY seq LIMIT 1",
                                  (kind,)).fetchone()
    return int(seq), json.loads(payload)


def _refused(home: Path, *command: str) -> str:
    result = runner.invoke(app, [*command, "--home", str(home)])
    assert result.exit_code == 2, result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    return lines[0]


def test_verify_when_untouched_then_every_event_verified(home: Path) -> None:
    result = runner.invoke(app, ["verify", "--home", str(home), "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["ok"] is True
    assert data["events"] > 50
    assert data["projections"] == "equal to the fold"


def test_open_when_a_fill_price_was_edited_then_refused_naming_the_event(home: Path) -> None:
    # Arrange: the first fill's price edited in place, as with sqlite3 by hand
    seq, payload = _first(home, "order.filled")
    payload["price"] = "1.0"
    _sql(home, "UPDATE events SET payload = ? WHERE seq = ?", json.dumps(payload, sort_keys=True), seq)
    # Act / Assert: status, verify and a resumed run all refuse it
    for command in (("status",), ("verify",)):
        assert f"event {seq} (order.filled) does not verify" in _refused(home, *command)


def test_open_when_an_event_was_deleted_then_refused_naming_the_missing_one(home: Path) -> None:
    seq, _payload = _first(home, "order.submitted")
    _sql(home, "DELETE FROM events WHERE seq = ?", seq)
    assert f"event {seq} is missing" in _refused(home, "status")


def test_open_when_the_last_events_were_deleted_then_refused(home: Path) -> None:
    with sqlite3.connect(home / "ledger.sqlite") as db:
        last = db.execute("SELECT max(seq) FROM events").fetchone()[0]
        db.execute("DELETE FROM events WHERE seq > ?", (last - 3,))
    assert f"events {last - 2}..{last} are missing" in _refused(home, "status")


def test_open_when_an_event_was_appended_then_refused_naming_it(home: Path) -> None:
    with sqlite3.connect(home / "ledger.sqlite") as db:
        last = db.execute("SELECT max(seq) FROM events").fetchone()[0]
        db.execute("INSERT INTO events (seq, time, kind, deployment_id, payload, hash) VALUES (?, 0, "
                   "'trading_state.changed', NULL, '{}', ?)", (last + 1, "f" * 64))
    assert f"event {last + 1} (trading_state.changed) does not verify" in _refused(home, "status")


def test_open_when_the_schema_is_from_a_newer_execdesk_then_refused_naming_the_revision(home: Path) -> None:
    _sql(home, "UPDATE alembic_version SET version_num = '0099'")
    assert "revision '0099'" in _refused(home, "status")


def test_verify_when_a_projection_row_was_edited_then_refused_naming_the_table(home: Path) -> None:
    # Arrange: the fills table edited (the events are untouched: status still reads the truth from them)
    _sql(home, "UPDATE fills SET price = '1.0' WHERE fill_id = (SELECT min(fill_id) FROM fills)")
    assert runner.invoke(app, ["status", "--home", str(home)]).exit_code == 0
    # Act / Assert
    assert "the fills table differs from the fold" in _refused(home, "verify")


def test_run_when_the_ledger_was_edited_then_nothing_trades_on_it(home: Path,
                                                                   write_config: Callable[..., Path]) -> None:
    seq, payload = _first(home, "order.filled")
    payload["price"] = "1.0"
    _sql(home, "UPDATE events SET payload = ? WHERE seq = ?", json.dumps(payload, sort_keys=True), seq)
    with sqlite3.connect(home / "ledger.sqlite") as db:
        before = db.execute("SELECT count(*) FROM events").fetchone()[0]
    config = write_config(market__end="2024-03-25T00:00:00Z")
    assert f"event {seq}" in _refused(home, "run", str(config))
    with sqlite3.connect(home / "ledger.sqlite") as db:
        assert db.execute("SELECT count(*) FROM events").fetchone()[0] == before
