"""Test kit: checks and fixtures shared across test folders."""

from __future__ import annotations

import copy
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import yaml

from execdesk.backtest.engine import BacktestConfig, run_backtest
from execdesk.clock import WallClock
from execdesk.data import PairProfile, generate_market
from execdesk.data.datadir import write_pair
from execdesk.desk.identity import Identity
from execdesk.domain.events import Event, EventKind
from execdesk.domain.state import DeskState
from execdesk.store.ledger import Ledger
from execdesk.strategy import validate_bundle
from tests.codegen.conftest import BASE


def desk_ledger(home: Path, deployment: str, pairs: Sequence[str], capital: Decimal) -> Ledger:
    """A ledger in ``home`` holding a configured desk (USDT, ``capital``) and one deployment of all of it
    trading ``pairs`` (flushed)."""
    led = Ledger.for_home(home)
    led.record(Event(1, EventKind.DESK_CONFIGURED, {"config": {}, "identity": {}, "quote": "USDT",
                                                    "capital": capital}))
    led.record(Event(2, EventKind.DEPLOYMENT_CREATED, {
        "deployment_id": deployment, "strategy_id": "S", "name": "s", "version": 1, "bundle_hash": "0",
        "timeframe": "1h", "pairs": list(pairs), "allocation": Decimal(1), "capital": capital}, deployment))
    led.flush()
    return led


def wait_for(predicate: Callable[[], Any], timeout_s: float = 20.0) -> Any:
    """``predicate()``, asked every 0.2 s until it is truthy or ``timeout_s`` has passed; its last answer."""
    import time

    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.2)


@contextmanager
def desk_running(home: Path) -> Iterator[None]:
    """As if a desk ran in ``home``: its lock is held (the lead's commands then queue their requests)."""
    from execdesk.desk.lock import DeskLock

    lock = DeskLock(home)
    assert lock.acquire(), f"{home}: a desk holds the lock already"
    try:
        yield
    finally:
        lock.release()


def replay_fills(state: DeskState, capital: Decimal) -> tuple[dict[tuple[str, str], Decimal], Decimal]:
    """Positions (per deployment and pair) and cash recomputed from the recorded fills alone."""
    positions: dict[tuple[str, str], Decimal] = defaultdict(Decimal)
    cash = capital
    for fill in state.fills.values():
        sign = 1 if fill.side == "BUY" else -1
        positions[(fill.deployment_id, fill.pair)] += sign * fill.qty
        cash -= sign * fill.qty * fill.price + fill.fee
    return positions, cash


def validated_bundle(tmp_path: Path, trades_offset: int = 0) -> tuple[Path, Path]:
    """A datadir of seeded candles, and a bundle whose validation figures are the native engine's
    results on them (the engine reproduces Freqtrade trade for trade)."""
    spec = copy.deepcopy(BASE)
    spec["validation"]["period"] = {"start": "2024-01-03", "end": "2024-02-20"}
    frames = generate_market({p: PairProfile(start_price=100.0, base_volume=1e6) for p in spec["pairs"]}, "1h",
                             datetime(2024, 1, 1, tzinfo=UTC), datetime(2024, 2, 21, tzinfo=UTC), seed=11)
    datadir = tmp_path / "data"
    for pair, frame in frames.items():
        write_pair(datadir, pair, "1h", frame)
    bundle = validate_bundle(spec)
    result = run_backtest(bundle, frames, BacktestConfig(stake_amount=100.0, max_open_trades=3))
    inside = result.trades[result.trades["open_date"] >= "2024-01-03"]
    wins, losses = inside[inside.profit_abs > 0].profit_abs.sum(), -inside[inside.profit_abs < 0].profit_abs.sum()
    assert len(inside) > 5
    spec["validation"].update(trades=len(inside) + trades_offset, win_rate=float((inside.profit_abs > 0).mean()),
                              profit_factor=float(wins / losses))
    path = tmp_path / "bundle.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path, datadir


def new_token(home: Path, name: str, role: str) -> str:
    """A new API token of ``home`` for ``name`` with ``role``, made by the local user (the home's admin)."""
    from execdesk.api.tokens import TokenStore
    from execdesk.desk.identity import local_identity

    token, _record = TokenStore(home).create(name, role, local_identity())
    return token


def token_identity(home: Path, name: str, role: str) -> Identity:
    """The identity of a new token of ``home`` for ``name`` with ``role`` (authenticated as the API would)."""
    from execdesk.api.tokens import TokenStore

    return TokenStore(home).authenticate(new_token(home, name, role))


class InstantWallClock(WallClock):
    """A wall clock (so the desk pages its webhooks, as a live one does) whose waits pass at once: time moves only
    when the loop waits for it (tests/desk/test_loop.py, benchmarks/bench_alerts.py)."""

    def __init__(self) -> None:
        super().__init__()
        self.t = 0

    def now(self) -> int:
        return self.t

    def wait_until(self, t: int) -> None:
        self.t = max(self.t, t)


def example_with(tmp_path: Path, name: str, **fields: Any) -> Path:
    """The example bundle ``name`` with ``fields`` set (e.g. ``sizing``, ``order_types``), written into ``tmp_path``."""
    from tests.conftest import BUNDLES

    spec = yaml.safe_load((BUNDLES / name).read_text())
    spec.update(fields)
    path = tmp_path / f"{'-'.join(sorted(fields))}-{name}"
    path.write_text(yaml.safe_dump(spec))
    return path


def run_config_to(config: Path, home: Path, end: str) -> None:
    """Carry the desk of ``config`` on in ``home`` until ``end`` (its market's end moved there)."""
    from execdesk.api import actions

    data = yaml.safe_load(config.read_text())
    data["market"]["end"] = end
    path = config.with_name(f"{config.stem}-{end[:10]}.yaml")
    path.write_text(yaml.safe_dump(data))
    actions.run_config(path, home, report=False)
