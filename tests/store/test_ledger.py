"""Tests of execdesk.store.ledger: persistence, projections, the hash chain, and migrations."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import text

from execdesk.domain.events import Event, EventKind
from execdesk.errors import InvalidInput, LedgerError
from execdesk.store.ledger import GENESIS, HEAD_REVISION, Ledger, chain_hash, sqlite_url, upgrade
from execdesk.store.projections import all_projection_rows

DEP = "dep-1"
PAIR = "BTC/USDT"
D = Decimal


def history() -> list[Event]:
    """Configure 10,000 USDT, one deployment, buy 2 @ 100 (fee 0.2), sell 2 @ 110 (fee 0.22), progress."""
    order = {"deployment_id": DEP, "pair": PAIR, "direction": "LONG", "type": "MARKET", "qty": D(2),
             "signal_time": 0, "ref_price": D(100)}
    return [
        Event(1, EventKind.DESK_CONFIGURED, {"config": {"risk": {"max": 0.2}}, "identity": {"desk": "t"},
                                             "quote": "USDT", "capital": D(10000)}),
        Event(2, EventKind.DEPLOYMENT_CREATED, {"deployment_id": DEP, "strategy_id": "STR-1", "name": "s", "version": 1,
                                                "bundle_hash": "0" * 64, "timeframe": "1h", "pairs": [PAIR],
                                                "allocation": D(1), "capital": D(10000)}, DEP),
        Event(3, EventKind.ORDER_SUBMITTED, {**order, "client_order_id": "o1", "side": "BUY",
                                             "reason": "entry_signal"}, DEP),
        Event(4, EventKind.ORDER_FILLED, {"client_order_id": "o1", "fill_id": "o1-1", "qty": D(2), "price": D(100),
                                          "fee": D("0.2")}, DEP),
        Event(5, EventKind.ORDER_SUBMITTED, {**order, "client_order_id": "o2", "side": "SELL", "reason": "roi"}, DEP),
        Event(6, EventKind.ORDER_FILLED, {"client_order_id": "o2", "fill_id": "o2-1", "qty": D(2), "price": D(110),
                                          "fee": D("0.22")}, DEP),
        Event(7, EventKind.RUN_PROGRESS, {"bar_time": 3600, "bars_done": 2}),
    ]


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path / "home"


@pytest.fixture
def ledger(home: Path) -> Iterator[Ledger]:
    led = Ledger.for_home(home)
    yield led
    led.engine.dispose()


def test_for_home_when_opened_in_a_fresh_home_then_sqlite_file_in_wal_mode(home: Path) -> None:
    # Act
    led = Ledger.for_home(home)

    # Assert
    try:
        assert (home / "ledger.sqlite").is_file()
        with led.engine.connect() as conn:
            assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert led.state.last_seq == 0
        assert list(led.events()) == []
    finally:
        led.close()


def test_record_when_flushed_and_reopened_then_same_state(home: Path) -> None:
    # Arrange
    led = Ledger.for_home(home)
    for e in history():
        led.record(e)
    led.flush()
    state = led.state
    led.close()

    # Act
    reopened = Ledger.for_home(home)

    # Assert: buy 2 @ 100, sell 2 @ 110 -> realised 20, fees 0.42, cash 10000 + 20 - 0.42 = 10019.58
    try:
        assert reopened.state == state
        assert reopened.state.cash() == D("10019.58")
        assert reopened.state.last_seq == 7
        assert reopened.state.deployments[DEP].trades == 1
    finally:
        reopened.close()


def test_record_when_called_then_seq_assigned_consecutively_and_state_folded(ledger: Ledger) -> None:
    # Act
    stamped = [ledger.record(e) for e in history()[:2]]

    # Assert
    assert [e.seq for e in stamped] == [1, 2]
    assert ledger.state.last_seq == 2
    assert DEP in ledger.state.deployments


def test_events_when_flushed_then_read_back_in_order_and_filterable(ledger: Ledger) -> None:
    # Arrange
    for e in history():
        ledger.record(e)
    ledger.flush()

    # Act
    all_events = list(ledger.events())
    fills = list(ledger.events(kinds={EventKind.ORDER_FILLED}))
    of_dep = list(ledger.events(deployment_id=DEP))

    # Assert: payload Decimals come back as strings
    assert [e.seq for e in all_events] == list(range(1, 8))
    assert [e.payload["fill_id"] for e in fills] == ["o1-1", "o2-1"]
    assert fills[0].payload["fee"] == "0.2"
    assert [e.seq for e in of_dep] == [2, 3, 4, 5, 6]


def test_read_projections_when_flushed_then_equal_to_rows_of_rebuilt_state(ledger: Ledger) -> None:
    # Arrange: flush in two batches, so projections are upserted over earlier rows
    events = history()
    for e in events[:4]:
        ledger.record(e)
    ledger.flush()
    for e in events[4:]:
        ledger.record(e)
    ledger.flush()

    # Act
    stored = ledger.read_projections()
    expected = all_projection_rows(ledger.rebuild_state())

    # Assert
    assert stored == expected
    assert [r["status"] for r in stored["orders"]] == ["FILLED", "FILLED"]
    assert stored["balances"] == [{"asset": "USDT", "amount": "10019.58"}]
    (position,) = stored["positions"]
    assert (position["qty"], position["realized_pnl"], position["fees"]) == ("0", "20", "0.42")


def test_verify_chain_when_ledger_whole_then_none(ledger: Ledger) -> None:
    # Arrange
    for e in history():
        ledger.record(e)
    ledger.flush()

    # Act / Assert
    assert ledger.verify_chain() is None


def test_verify_chain_when_hashes_recomputed_by_hand_then_match_stored(ledger: Ledger) -> None:
    # Arrange
    stamped = [ledger.record(e) for e in history()[:3]]
    ledger.flush()

    # Act
    prev = GENESIS
    expected = []
    for e in stamped:
        prev = chain_hash(prev, e.seq, e.content())
        expected.append(prev)

    # Assert
    assert [h for _, _, h in ledger.event_contents()] == expected


def test_verify_chain_when_an_event_payload_edited_then_seq_of_that_event(ledger: Ledger, home: Path) -> None:
    # Arrange
    for e in history():
        ledger.record(e)
    ledger.flush()
    with sqlite3.connect(home / "ledger.sqlite") as conn:
        (payload,) = conn.execute("SELECT payload FROM events WHERE seq = 4").fetchone()
        edited = json.dumps({**json.loads(payload), "price": "90"}, sort_keys=True, separators=(",", ":"))
        conn.execute("UPDATE events SET payload = ? WHERE seq = 4", (edited,))
    conn.close()

    # Act
    bad = ledger.verify_chain()

    # Assert
    assert bad == 4


def test_verify_chain_when_time_of_first_event_edited_then_seq_1(ledger: Ledger, home: Path) -> None:
    # Arrange
    for e in history():
        ledger.record(e)
    ledger.flush()
    with sqlite3.connect(home / "ledger.sqlite") as conn:
        conn.execute("UPDATE events SET time = 999 WHERE seq = 1")
    conn.close()

    # Act / Assert
    assert ledger.verify_chain() == 1


def test_record_when_not_flushed_then_invisible_to_a_second_ledger(ledger: Ledger, home: Path) -> None:
    # Arrange
    events = history()
    for e in events[:2]:
        ledger.record(e)
    ledger.flush()
    ledger.record(events[2])  # buffered only

    # Act
    other = Ledger.for_home(home)

    # Assert
    try:
        assert ledger.state.last_seq == 3
        assert other.state.last_seq == 2
        assert [e.seq for e in other.events()] == [1, 2]
        assert other.state.orders == {}
        assert other.read_projections()["orders"] == []
    finally:
        other.engine.dispose()


def test_close_when_flush_false_then_buffered_events_dropped(home: Path) -> None:
    # Arrange
    led = Ledger.for_home(home)
    events = history()
    led.record(events[0])
    led.flush()
    led.record(events[1])

    # Act
    led.close(flush=False)
    reopened = Ledger.for_home(home)

    # Assert
    try:
        assert reopened.state.last_seq == 1
        assert reopened.state.deployments == {}
    finally:
        reopened.close()


def test_context_manager_when_body_raises_then_nothing_flushed(home: Path) -> None:
    # Arrange
    event = history()[0]

    def crash() -> None:
        with Ledger.for_home(home) as led:
            led.record(event)
            raise RuntimeError("boom")

    # Act
    with pytest.raises(RuntimeError, match="boom"):
        crash()

    # Assert
    reopened = Ledger.for_home(home)
    try:
        assert reopened.state.last_seq == 0
    finally:
        reopened.close()


def test_reopen_when_more_events_recorded_then_chain_continues(home: Path) -> None:
    # Arrange
    events = history()
    led = Ledger.for_home(home)
    for e in events[:3]:
        led.record(e)
    led.close()

    # Act
    led = Ledger.for_home(home)
    for e in events[3:]:
        led.record(e)
    led.flush()

    # Assert
    try:
        assert led.verify_chain() is None
        assert [e.seq for e in led.events()] == list(range(1, 8))
    finally:
        led.close()


def test_open_when_database_unreachable_then_ledger_error_naming_the_url() -> None:
    url = "sqlite:////nonexistent-execdesk-dir/sub/ledger.sqlite"
    with pytest.raises(LedgerError, match="cannot open the ledger at") as info:
        Ledger.open(url)
    assert url in str(info.value)


@pytest.mark.parametrize("url", ["nosuchdialect://user@host/db", "this is not a url"])
def test_open_when_url_malformed_or_unknown_dialect_then_invalid_input(url: str) -> None:
    with pytest.raises(InvalidInput, match="is not usable"):
        Ledger.open(url)


def test_open_when_url_has_a_password_then_the_error_masks_it() -> None:
    with pytest.raises(InvalidInput) as info:
        Ledger.open("nosuchdialect://trader:hunter2@db.example/ledger")
    assert "hunter2" not in str(info.value)
    assert "***" in str(info.value)


def test_open_when_opened_twice_then_migration_idempotent_and_data_kept(home: Path) -> None:
    # Arrange
    first = Ledger.for_home(home)
    first.record(history()[0])
    first.close()

    # Act
    second = Ledger.for_home(home)
    upgrade(second.engine)  # and once more by hand

    # Assert
    try:
        with second.engine.connect() as conn:
            versions = conn.execute(text("SELECT version_num FROM alembic_version")).scalars().all()
            tables = set(conn.execute(text("SELECT name FROM sqlite_master WHERE type = 'table'")).scalars())
        assert versions == [HEAD_REVISION]
        assert {"events", "deployments", "orders", "fills", "positions", "balances", "desk"} <= tables
        assert second.state.last_seq == 1
    finally:
        second.close()


def test_sqlite_url_when_home_relative_then_absolute_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Arrange
    monkeypatch.chdir(tmp_path)

    # Act
    url = sqlite_url(Path("h"))

    # Assert
    assert url == f"sqlite:///{tmp_path.resolve() / 'h' / 'ledger.sqlite'}"


def test_verify_chain_when_last_events_deleted_then_first_missing_seq(ledger: Ledger, home: Path) -> None:
    # Arrange: the projections (desk.last_seq) were written with the events; the tail then disappears
    for e in history():
        ledger.record(e)
    ledger.flush()
    last = ledger.state.last_seq
    with sqlite3.connect(home / "ledger.sqlite") as conn:
        conn.execute("DELETE FROM events WHERE seq >= ?", (last - 1,))
    conn.close()

    # Act / Assert
    assert ledger.verify_chain() == last - 1


def test_head_revision_when_compared_with_the_migrations_then_it_is_alembics_head() -> None:
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    from execdesk.store.ledger import HEAD_REVISION, MIGRATIONS

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    assert ScriptDirectory.from_config(cfg).get_current_head() == HEAD_REVISION


def test_open_when_the_schema_is_at_head_then_it_is_not_migrated_again(tmp_path: Path) -> None:
    from execdesk.store.ledger import HEAD_REVISION, schema_revision

    Ledger.for_home(tmp_path).close()
    with Ledger.for_home(tmp_path) as ledger:
        assert schema_revision(ledger.engine) == HEAD_REVISION


def test_open_when_the_schema_migration_dies_midway_then_nothing_of_it_stays_and_the_next_open_works(
        home: Path) -> None:
    # Arrange: the first open of a home dies while creating the schema (a kill -9 between two CREATE TABLEs)
    from sqlalchemy import event as sa_event

    from execdesk.store.ledger import make_engine

    home.mkdir(parents=True, exist_ok=True)
    engine = make_engine(sqlite_url(home))

    def die(_conn: object, _cursor: object, statement: str, *_args: object) -> None:
        if statement.lstrip().upper().startswith("CREATE TABLE FILLS"):
            raise RuntimeError("killed")

    sa_event.listen(engine, "before_cursor_execute", die)
    with pytest.raises(RuntimeError):
        upgrade(engine)
    engine.dispose()
    # Act: the desk starts again
    with Ledger.for_home(home) as ledger:
        ledger.record(history()[0])
    # Assert: a whole schema at the head revision, the event kept
    with Ledger.for_home(home) as ledger:
        assert ledger.state.last_seq == 1
        with ledger.engine.connect() as conn:
            assert conn.execute(text("SELECT version_num FROM alembic_version")).scalar() == HEAD_REVISION
