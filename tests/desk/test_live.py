"""A desk on an exchange through ccxt, live: the exchange's candles, orders to the exchange, its fills back.

The exchange is the loopback Binance of the ccxt venue's tests (``tests/venues/fake_binance.py``), here
with 1-minute candles, market orders filled at the last closed candle's close, and an account whose
balances follow the fills. The desk's clock is stepped: "waiting for the next bar to close" moves it, so a
live session of twenty minutes runs in seconds, through ccxt's real HTTP layer and Binance parser.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml

from execdesk.api import actions
from execdesk.data import PairProfile, generate_market
from execdesk.desk.runner import run_desk
from execdesk.desk.settings import load_desk_config
from execdesk.domain.events import EventKind
from execdesk.domain.types import TradingState
from execdesk.errors import Refused
from execdesk.store.ledger import Ledger
from execdesk.strategy import load_bundle
from tests.conftest import BUNDLES
from tests.venues.fake_binance import FakeBinance, Request, loopback_only  # noqa: F401 (an autouse fixture)

T0 = int(datetime(2024, 6, 3, 12, 0, tzinfo=UTC).timestamp())  # the desk's first live bar opens here
START = T0 - 6 * 3600  # warm-up from here
END = T0 + 20 * 60
CASH = Decimal(100_000)


class SteppedClock:
    """A wall clock for tests: ``now`` stands still until the desk waits, then jumps a second past the wait."""

    def __init__(self, now: int) -> None:
        self.t = now

    def now(self) -> int:
        return self.t

    def wait_until(self, t: int) -> None:
        self.t = max(self.t, t + 1)


class LiveBinance(FakeBinance):
    """The loopback Binance with candles, market fills at the last closed candle's close, and balances."""

    def __init__(self, candles: dict[str, pd.DataFrame], clock: SteppedClock) -> None:
        super().__init__()
        self.orders.clear()  # a fresh account: none of the recorded orders and trades
        self._trades = []
        self.clock = clock
        self.candles = {pair.replace("/", ""): frame for pair, frame in candles.items()}
        self.holdings: dict[str, Decimal] = {"USDT": CASH}

    def _route(self, req: Request) -> tuple[int, Any]:
        p = req.params
        if (req.method, req.path) == ("GET", "/api/v3/klines"):
            frame = self.candles[p["symbol"]]
            opens = (frame["date"] - pd.Timestamp(0, tz="UTC")) // pd.Timedelta(seconds=1)
            since = int(p.get("startTime", 0)) // 1000
            rows = frame[(opens >= since) & (opens <= self.clock.now())].head(int(p.get("limit", 500)))
            return 200, [[int(r.date.timestamp()) * 1000, f"{r.open:.8f}", f"{r.high:.8f}", f"{r.low:.8f}",
                          f"{r.close:.8f}", f"{r.volume:.8f}", int(r.date.timestamp()) * 1000 + 59_999, "0", 1, "0",
                          "0", "0"] for r in rows.itertuples()]
        if (req.method, req.path) == ("GET", "/api/v3/account"):
            body = dict(super()._route(req)[1])
            body["balances"] = [{"asset": a, "free": f"{q:.8f}", "locked": "0.00000000"}
                                for a, q in self.holdings.items()]
            return 200, body
        return super()._route(req)

    def _place(self, p: dict[str, str]) -> tuple[int, Any]:
        status, order = super()._place(p)
        if status != 200 or p["type"] != "MARKET":
            return status, order
        frame = self.candles[p["symbol"]]
        closed = frame[frame["date"] + pd.Timedelta(minutes=1) <= pd.Timestamp(self.clock.now(), unit="s", tz="UTC")]
        price = Decimal(f"{closed['close'].iloc[-1]:.2f}")
        qty = Decimal(p["quantity"])
        fee = (qty * price * Decimal("0.001")).quantize(Decimal("0.00000001"))
        order["fills"] = [{"price": f"{price}", "qty": p["quantity"], "commission": f"{fee}",
                           "commissionAsset": "USDT", "tradeId": order["orderId"]}]
        order["cummulativeQuoteQty"] = f"{qty * price}"
        buyer = p["side"] == "BUY"
        self._trades.append({"symbol": p["symbol"], "id": order["orderId"], "orderId": order["orderId"],
                             "orderListId": -1, "price": f"{price}", "qty": p["quantity"],
                             "quoteQty": f"{qty * price}", "commission": f"{fee}", "commissionAsset": "USDT",
                             "time": self.clock.now() * 1000, "isBuyer": buyer, "isMaker": False,
                             "isBestMatch": True})
        base = p["symbol"].removesuffix("USDT")
        sign = 1 if buyer else -1
        self.holdings[base] = self.holdings.get(base, Decimal(0)) + sign * qty
        self.holdings["USDT"] -= sign * qty * price + fee
        return status, order


@pytest.fixture
def exchange(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[LiveBinance, SteppedClock]]:
    monkeypatch.setenv("EXECDESK_BINANCE_API_KEY", "test-key-for-the-loopback-exchange")
    monkeypatch.setenv("EXECDESK_BINANCE_SECRET", "test-secret-for-the-loopback-exchange")
    frames = generate_market({"BTC/USDT": PairProfile(start_price=60_000, annual_vol=0.6, base_volume=500.0)}, "1m",
                             datetime.fromtimestamp(START, UTC), datetime.fromtimestamp(END + 3600, UTC), seed=5)
    clock = SteppedClock(T0 + 5)
    with LiveBinance(frames, clock) as fake:
        yield fake, clock


def _scalper(folder: Path, version: int = 1) -> Path:
    """A 1-minute strategy that is always in the market for a moment: in on any close, out at +0.1% or -0.2%."""
    spec = load_bundle(BUNDLES / "trend_ema_cross.yaml").to_canonical_dict()
    spec.update(id="STR-050", name="minute_scalper", version=version, pairs=["BTC/USDT"], timeframe="1m",
                indicators={}, entry={"long": "close > 0"}, exit={}, stoploss=-0.002, minimal_roi={"0": 0.001})
    path = folder / f"scalper-v{version}.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


def _config(folder: Path, fake: FakeBinance) -> Path:
    config = {
        "desk": {"name": "live", "capital": float(CASH), "quote": "USDT", "seed": 1},
        "venue": {"kind": "ccxt", "exchange": "binance", "api_url": fake.url, "timeout_ms": 3000, "fee_bps": 10},
        "market": {"source": "exchange", "timeframe": "1m", "start": datetime.fromtimestamp(START, UTC).isoformat(),
                   "end": datetime.fromtimestamp(END, UTC).isoformat(), "pairs": {"BTC/USDT": {}}},
        "clock": "wall",
        "risk": {"risk_per_trade": 0.05, "max_position_fraction": 0.5, "staging": {"enabled": False},
                 "assessment": {"max_deployed_fraction": 1.0, "max_worst_case_drawdown": 1.0,
                                "max_correlated_exposure": 10.0}},
        "strategies": [{"bundle": str(_scalper(folder)), "allocation": 0.5}],
    }
    path = folder / "live.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def test_live_desk_when_bars_close_then_it_trades_the_exchange_and_its_books_agree_with_the_exchanges(
        exchange: tuple[LiveBinance, SteppedClock], tmp_path: Path) -> None:
    fake, clock = exchange
    home = tmp_path / "home"
    # Act: the desk runs live to its end (twenty 1-minute bars after the warm-up)
    summary = run_desk(load_desk_config(_config(tmp_path, fake)), home, clock=clock)
    # Assert
    assert summary.trading_state == "ACTIVE"
    with Ledger.for_home(home) as ledger:
        state = ledger.state
        orders = [o for o in state.orders.values() if o.deployment_id == "STR-050-v1"]
        assert orders, "the desk should have traded"
        # nothing traded on the warm-up candles: the first order is on the first live bar or later
        assert min(o.signal_time for o in orders) >= T0 + 60
        # every order went to the exchange under its client id, and every fill came back from it
        assert {p.params["newClientOrderId"] for p in fake.posts()} == {o.client_order_id for o in orders}
        assert len(state.fills) == len(fake._trades)
        assert {f.price for f in state.fills.values()} == {Decimal(t["price"]) for t in fake._trades}
        # the position is the exchange's balance; reconciliation found nothing to say
        pos = state.position("STR-050-v1", "BTC/USDT")
        held = pos.qty if pos is not None else Decimal(0)
        assert held == fake.holdings.get("BTC", Decimal(0))
        assert state.cash() == fake.holdings["USDT"]  # fees as the exchange charged them
        reconciled = [e.payload for e in ledger.events({EventKind.RECONCILED})]
        assert reconciled
        assert all(not r.get("position_mismatches") for r in reconciled)
        # the gates ran for the exchange, and the deployment trades it
        gates = [e.payload for e in ledger.events({EventKind.GATE})]
        assert [g["gate"] for g in gates] == ["intake", "signal_generator", "risk", "approval", "deploy", "monitor"]
        assert {g["venue"] for g in gates} == {"ccxt:binance"}
        assert state.deployments["STR-050-v1"].venue == "ccxt:binance"
        assert state.deployments["STR-050-v1"].state is TradingState.ACTIVE


def test_live_desk_when_a_bundle_is_deployed_then_only_the_desks_own_venue_passes_the_deploy_gate(
        exchange: tuple[LiveBinance, SteppedClock], tmp_path: Path, write_config: Callable[..., Path]) -> None:
    fake, clock = exchange
    home = tmp_path / "home"
    run_desk(load_desk_config(_config(tmp_path, fake)), home, clock=clock)
    with pytest.raises(Refused, match="trades ccxt:binance, not the paper venue"):
        actions.deploy(home, _scalper(tmp_path, 2), "paper", 1_900_000_000, allocation=0.1)
    result = actions.deploy(home, _scalper(tmp_path, 3), "ccxt:binance", 1_900_000_000, allocation=0.1)
    deploy_gate = next(g for g in result["gates"] if g["gate"] == "deploy")
    assert deploy_gate["reason"].startswith("ccxt:binance (testnet)")


def test_live_desk_when_restarted_after_downtime_then_it_skips_the_missed_bars_and_says_so(
        exchange: tuple[LiveBinance, SteppedClock], tmp_path: Path) -> None:
    fake, clock = exchange
    home = tmp_path / "home"
    config = _config(tmp_path, fake)
    run_desk(load_desk_config(config), home, clock=clock)
    # Arrange: the desk is down for ten minutes, then started again with a later end
    clock.t += 10 * 60
    back_at = clock.now()
    data = yaml.safe_load(config.read_text())
    data["market"]["end"] = datetime.fromtimestamp(END + 20 * 60, UTC).isoformat()
    later = tmp_path / "live-later.yaml"
    later.write_text(yaml.safe_dump(data, sort_keys=False))
    # Act
    run_desk(load_desk_config(later), home, clock=clock)
    # Assert: the missed bars are skipped (said in an alert), nothing is decided on them
    with Ledger.for_home(home) as ledger:
        skipped = [e.payload for e in ledger.events({EventKind.ALERT_RAISED})
                   if e.payload["code"] == "live_bars_skipped"]
        assert len(skipped) == 1
        assert skipped[0]["evidence"]["skipped"] >= 9
        gap = [o for o in ledger.state.orders.values() if END < o.signal_time < back_at - 60]
        assert gap == []


def test_live_desk_when_bars_close_then_the_exchanges_top_of_book_is_read_each_bar_and_recorded_for_the_monitor(
        exchange: tuple[LiveBinance, SteppedClock], tmp_path: Path) -> None:
    fake, clock = exchange
    home = tmp_path / "home"
    # Act
    run_desk(load_desk_config(_config(tmp_path, fake)), home, clock=clock)
    # Assert: at each live bar's close the desk read BTC/USDT's book (the recorded depth: 59999.99 / 60000.01)
    with Ledger.for_home(home) as ledger:
        quoted = list(ledger.events({EventKind.QUOTED}))
        closes = {e.time for e in ledger.events({EventKind.RUN_PROGRESS}) if not e.payload.get("warm_up")}
    depth = [r for r in fake.requests if r.path == "/api/v3/depth"]
    assert len(quoted) >= 10
    assert len(depth) == len(quoted)
    assert {e.time for e in quoted} <= closes  # at a bar's close
    assert all(e.time == e.payload["bar_time"] + 60 for e in quoted)
    assert {(Decimal(q["bid"]), Decimal(q["ask"])) for e in quoted for q in e.payload["quotes"].values()} == {
        (Decimal("59999.99"), Decimal("60000.01"))}
    assert all(e.payload["quotes"]["BTC/USDT"]["spread_bps"] == pytest.approx(0.02 / 60_000 * 10_000) for e in quoted)
    # a steady book is no news: no spread alert
    with Ledger.for_home(home) as ledger:
        assert not [e for e in ledger.events({EventKind.ALERT_RAISED}) if e.payload["code"] == "spread_widening"]
