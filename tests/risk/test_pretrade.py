"""Tests of execdesk.risk.pretrade.PreTrade: worked sizing and denial examples with hand numbers, the book it
keeps (holds of orders in flight, fills, cancels, a rebuild from the ledger), and properties over random books
(an approved entry, once committed, breaches no cap; HALTED lets nothing through; REDUCING only exits)."""

from __future__ import annotations

from dataclasses import dataclass, replace
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from execdesk.domain.events import Event, EventKind
from execdesk.domain.state import DeskState, FillRecord
from execdesk.domain.types import Direction, IntentReason, OrderIntent, Side, TradingState, dec
from execdesk.risk.config import RiskConfig
from execdesk.risk.fastpath import RiskState, entry_rooms
from execdesk.risk.pretrade import Context, PreTrade, Verdict
from execdesk.risk.sizing import fixed_fractional

D = Decimal
ACTIVE, REDUCING, HALTED = TradingState.ACTIVE, TradingState.REDUCING, TradingState.HALTED
DEPS = ("dep-1", "dep-2")
PAIRS = ("BTC/USDT", "ETH/USDT", "SOL/USDT")  # BTC and ETH correlated ("majors"), SOL in no group
GROUPS = {"majors": ["BTC/USDT", "ETH/USDT"]}
FEE = D("0.001")
NO_FEE = D(0)
T0 = 1_700_000_000
CTX = Context(ACTIVE, ACTIVE, portfolio_equity=10_000.0, deployment_equity=10_000.0, stop_distance=0.05)


# ---------------------------------------------------------------- test kit
@dataclass
class Desk:
    """A ledger (DeskState folded from events) and the PreTrade kept beside it, as the loop keeps them."""

    cfg: RiskConfig
    ledger: DeskState
    pretrade: PreTrade
    prices: dict[str, float]
    seq: int = 0
    fills: int = 0

    def record(self, kind: EventKind, payload: dict[str, object], t: int = T0) -> None:
        self.seq += 1
        self.ledger.apply(Event(t, kind, payload, str(payload.get("deployment_id") or "") or None, self.seq))

    def submit(self, coid: str, intent: OrderIntent, qty: Decimal, t: int = T0) -> None:
        """The order manager's ORDER_SUBMITTED for ``intent`` (no risk check)."""
        self.record(EventKind.ORDER_SUBMITTED, {
            "client_order_id": coid, "deployment_id": intent.deployment_id, "pair": intent.pair,
            "side": intent.side.value, "direction": intent.direction.value, "type": "MARKET", "qty": qty,
            "reason": intent.reason.value, "signal_time": intent.signal_time, "ref_price": intent.ref_price}, t)

    def fill(self, coid: str, qty: Decimal, price: Decimal, fee: Decimal = NO_FEE, t: int = T0) -> FillRecord:
        self.fills += 1
        fill_id = f"{coid}-{self.fills}"
        self.record(EventKind.ORDER_FILLED, {"fill_id": fill_id, "client_order_id": coid, "qty": qty, "price": price,
                                             "fee": fee}, t)
        return self.ledger.fills[fill_id]

    def hold(self, dep: str, pair: str, side: Side, qty: str, price: str = "100", fee: Decimal = NO_FEE) -> None:
        """A position already on the books: an order submitted and filled before PreTrade was built."""
        coid = f"pre-{self.seq}"
        intent = OrderIntent(dep, pair, side, Direction.LONG if side is Side.BUY else Direction.SHORT,
                             IntentReason.ENTRY_SIGNAL, T0 - 3600, D(price))
        self.submit(coid, intent, D(qty), T0 - 3600)
        self.fill(coid, D(qty), D(price), fee, T0 - 3600)

    def start(self, now: int = T0) -> Desk:
        """PreTrade rebuilt from the ledger as it stands (a desk starting or resuming)."""
        self.pretrade.rebuild(self.ledger, self.prices, now)
        return self

    def send(self, coid: str, intent: OrderIntent, ctx: Context = CTX) -> Verdict:
        """What the loop's ``submit`` does: decide, and if approved record the order and commit it."""
        verdict = self.pretrade.decide(intent, ctx)
        if verdict.approved:
            self.submit(coid, intent, verdict.qty, intent.signal_time)
            self.pretrade.commit(coid, intent, verdict)
        return verdict


def desk(cfg: RiskConfig | None = None, capital: str = "10000", fee: Decimal = FEE,
         prices: dict[str, float] | None = None, pairs: tuple[str, ...] = PAIRS) -> Desk:
    """Two deployments, three pairs at 100, capital 10,000 (cash), nothing held yet."""
    cfg = cfg or RiskConfig(correlation_groups=GROUPS)
    state = DeskState()
    d = Desk(cfg, state, PreTrade(cfg, DEPS, pairs, fee, float(capital)), prices or dict.fromkeys(pairs, 100.0))
    d.record(EventKind.DESK_CONFIGURED, {"config": {}, "identity": {}, "quote": "USDT", "capital": D(capital)})
    for dep in DEPS:
        d.record(EventKind.DEPLOYMENT_CREATED, {
            "deployment_id": dep, "strategy_id": "S", "name": dep, "version": 1, "bundle_hash": "0",
            "timeframe": "1h", "pairs": list(pairs), "allocation": D(1), "capital": D(capital)})
    return d


def entry(pair: str = "BTC/USDT", price: str = "100", side: Side = Side.BUY, dep: str = "dep-1",
          t: int = T0) -> OrderIntent:
    direction = Direction.LONG if side is Side.BUY else Direction.SHORT
    return OrderIntent(dep, pair, side, direction, IntentReason.ENTRY_SIGNAL, t, D(price))


def exit_(qty: str, pair: str = "BTC/USDT", side: Side = Side.SELL, dep: str = "dep-1", t: int = T0,
          reason: IntentReason = IntentReason.STOPLOSS, price: str = "100") -> OrderIntent:
    direction = Direction.LONG if side is Side.SELL else Direction.SHORT
    return OrderIntent(dep, pair, side, direction, reason, t, D(price), D(qty))


def caps(verdict: Verdict) -> list[str]:
    assert verdict.sizing is not None
    return verdict.sizing.caps_applied


def cap_rules(verdict: Verdict) -> list[str]:
    return [c.split(":")[0] for c in caps(verdict)]


# ---------------------------------------------------------------- entries: sizing
def test_decide_when_entry_within_every_limit_then_fixed_fractional_qty_20() -> None:
    # Arrange
    d = desk().start()

    # Act: equity 10,000, risk 1%, stop 5%, price 100
    verdict = d.pretrade.decide(entry(), CTX)

    # Assert: notional 10,000 x 0.01 / 0.05 = 2,000 -> qty 2,000 / 100 = 20, nothing cut
    assert (verdict.approved, verdict.rule, verdict.qty) == (True, "approved", D(20))
    assert caps(verdict) == []
    assert verdict.numbers["notional"] == "2000.00"
    assert verdict.numbers["equity_in_use"] == "10000.00"


def test_decide_when_position_fraction_caps_then_named_in_caps() -> None:
    # Arrange: max_position_fraction 0.10 -> cap 10,000 x 0.10 = 1,000
    d = desk(RiskConfig(max_position_fraction=0.10)).start()

    # Act
    verdict = d.pretrade.decide(entry(), CTX)

    # Assert: qty 1,000 / 100 = 10
    assert verdict.approved
    assert verdict.qty == D(10)
    assert caps(verdict) == ["max_position_fraction: 2000.00 -> 1000.00"]


def test_decide_when_allocation_fraction_half_then_size_halved() -> None:
    # Arrange: staged at 50% -> equity in use 10,000 x 0.5 = 5,000
    d = desk().start()

    # Act
    verdict = d.pretrade.decide(entry(), replace(CTX, allocation_fraction=0.5))

    # Assert: 5,000 x 0.01 / 0.05 = 1,000 -> qty 10; not a cap, the base of the sizing
    assert verdict.approved
    assert verdict.qty == D(10)
    assert caps(verdict) == []
    assert verdict.numbers["equity_in_use"] == "5000.00"
    assert verdict.numbers["allocation_fraction"] == "0.5"


def test_decide_when_size_multiplier_half_then_halved_and_named_drawdown_ladder() -> None:
    # Arrange
    d = desk().start()

    # Act: the ladder's alert step sizes new positions at 0.5
    verdict = d.pretrade.decide(entry(), replace(CTX, size_multiplier=0.5))

    # Assert: 2,000 x 0.5 = 1,000 -> qty 10
    assert verdict.approved
    assert verdict.qty == D(10)
    assert caps(verdict) == ["drawdown_ladder: 2000.00 x 0.5 -> 1000.00"]


def test_decide_when_max_order_notional_set_then_capped_and_named() -> None:
    # Arrange: an absolute cap of 500 per order
    d = desk(RiskConfig(max_order_notional=500)).start()

    # Act
    verdict = d.pretrade.decide(entry(), CTX)

    # Assert: room 500 -> qty 500 / 100 = 5, less a hair (an entry of exactly the room sits on the cap)
    assert verdict.approved
    assert caps(verdict) == ["max_order_notional: 2000.00 -> 500.00"]
    assert D("4.99999999") < verdict.qty < D(5)


# ---------------------------------------------------------------- entries: each cap's room
def test_decide_when_deployment_holds_9000_then_room_1000_and_deployment_exposure_named() -> None:
    # Arrange: dep-1 holds 90 SOL at 100 = 9,000 of its 10,000 equity (cash 10,000 - 9,000 = 1,000 is
    # not the binding room: its equity in the context is what it is allowed to hold)
    d = desk(capital="20000")
    d.hold("dep-1", "SOL/USDT", Side.BUY, "90")
    d.start()

    # Act
    verdict = d.pretrade.decide(entry(), replace(CTX, portfolio_equity=20_000.0))

    # Assert: room 10,000 - 9,000 = 1,000 -> qty 10 (a hair less)
    assert verdict.approved
    assert caps(verdict) == ["deployment_exposure: 2000.00 -> 1000.00"]
    assert verdict.qty == pytest.approx(D(10), rel=D("1e-8"))
    assert verdict.numbers["deployment_exposure"] == "9000.00"


def test_decide_when_other_deployment_holds_8500_then_gross_room_1500() -> None:
    # Arrange: dep-2 holds 85 SOL = 8,500 of the portfolio's 10,000 x max_gross_exposure 1.0
    d = desk(capital="20000")
    d.hold("dep-2", "SOL/USDT", Side.BUY, "85")
    d.start()

    # Act
    verdict = d.pretrade.decide(entry(), CTX)

    # Assert: room 10,000 - 8,500 = 1,500 -> qty 15
    assert verdict.approved
    assert caps(verdict) == ["gross_exposure: 2000.00 -> 1500.00"]
    assert verdict.qty == pytest.approx(D(15), rel=D("1e-8"))


def test_decide_when_correlated_group_long_2800_then_room_200_and_short_side_free() -> None:
    # Arrange: dep-2 long 28 ETH = 2,800; group majors capped at 0.30 x 10,000 = 3,000 per direction
    d = desk()
    d.hold("dep-2", "ETH/USDT", Side.BUY, "28")
    d.start()

    # Act
    long_btc = d.pretrade.decide(entry(), CTX)
    short_btc = d.pretrade.decide(entry(side=Side.SELL), CTX)
    long_sol = d.pretrade.decide(entry("SOL/USDT"), CTX)

    # Assert: a long BTC entry has 3,000 - 2,800 = 200 -> qty 2; the short side and SOL (no group) are not cut
    assert caps(long_btc) == ["correlated_exposure: 2000.00 -> 200.00"]
    assert long_btc.qty == pytest.approx(D(2), rel=D("1e-8"))
    assert (short_btc.approved, short_btc.qty, caps(short_btc)) == (True, D(20), [])
    assert (long_sol.approved, long_sol.qty, caps(long_sol)) == (True, D(20), [])


def test_decide_when_cash_505_then_room_is_cash_less_fee() -> None:
    # Arrange: capital 505, nothing held
    d = desk(capital="505").start()

    # Act
    verdict = d.pretrade.decide(entry(), CTX)

    # Assert: room 505 / 1.001 = 504.4955... -> qty 5.0449550..., its cost within the cash
    assert verdict.approved
    assert caps(verdict) == ["free_cash: 2000.00 -> 504.50"]
    assert verdict.qty == pytest.approx(D("5.044955044955"), rel=D("1e-8"))
    assert verdict.qty * D(100) * (1 + FEE) <= D(505)


def test_decide_when_room_divides_unevenly_then_qty_rounded_down_within_cash() -> None:
    # Arrange: cash 0.01, fee 3 bps, price 1 -> room 0.01 / 1.0003 = 0.009997000899730...
    fee = D("0.0003")
    d = desk(RiskConfig(), capital="0.01", fee=fee, prices=dict.fromkeys(PAIRS, 1.0)).start()

    # Act
    verdict = d.pretrade.decide(entry(price="1"), replace(CTX, portfolio_equity=1.0, deployment_equity=1.0))

    # Assert: rounded down, never up: the cost stays within the cash (in Decimal, as the ledger will book it)
    assert verdict.approved
    assert cap_rules(verdict) == ["free_cash"]
    assert verdict.qty * (1 + fee) <= D("0.01")
    assert verdict.qty > D("0.00999")


def test_decide_when_several_rooms_bind_then_each_named_in_check_order() -> None:
    # Arrange: position cap 0.15 x 10,000 = 1,500; dep-1 holds 88 SOL (8,800) -> room 1,200;
    # dep-2 holds 2 ETH (200) -> gross 9,000 -> room 1,000; majors long 200 of 0.11 x 10,000 -> room 900;
    # cash 9,809 - 9,000 = 809... less the fee: 809 / 1.001 = 808.19 -> not binding; so capital 9,800 ->
    # cash 800 -> room 800 / 1.001 = 799.2008
    cfg = RiskConfig(max_position_fraction=0.15, max_correlated_exposure=0.11, correlation_groups=GROUPS)
    d = desk(cfg, capital="9800")
    d.hold("dep-1", "SOL/USDT", Side.BUY, "88")
    d.hold("dep-2", "ETH/USDT", Side.BUY, "2")
    d.start()

    # Act
    verdict = d.pretrade.decide(entry(), CTX)

    # Assert: 2,000 -> 1,500 -> 1,200 -> 1,000 -> 900 -> 799.20
    assert verdict.approved
    assert caps(verdict) == ["max_position_fraction: 2000.00 -> 1500.00", "deployment_exposure: 1500.00 -> 1200.00",
                             "gross_exposure: 1200.00 -> 1000.00", "correlated_exposure: 1000.00 -> 900.00",
                             "free_cash: 900.00 -> 799.20"]
    assert verdict.qty == pytest.approx(D("7.992007992008"), rel=D("1e-8"))
    assert verdict.qty < D("7.992007992008")


def test_decide_when_room_below_a_hundredth_of_the_size_then_dust_denied_naming_the_binding_cap() -> None:
    # Arrange: cash 15 -> room 15 / 1.001 = 14.985 < 2,000 / 100 = 20
    d = desk(capital="15").start()

    # Act
    verdict = d.pretrade.decide(entry(), CTX)

    # Assert
    assert not verdict.approved
    assert (verdict.rule, verdict.reason, verdict.qty) == ("free_cash", "no room for a position of useful size", 0)
    assert cap_rules(verdict) == ["free_cash"]


def test_decide_when_gross_already_above_its_cap_then_denied_gross_exposure() -> None:
    # Arrange: dep-2 holds 120 SOL = 12,000 > 10,000
    d = desk(capital="50000")
    d.hold("dep-2", "SOL/USDT", Side.BUY, "120")
    d.start()

    # Act
    verdict = d.pretrade.decide(entry(), CTX)

    # Assert
    assert not verdict.approved
    assert verdict.rule == "gross_exposure"
    assert verdict.qty == 0
    assert caps(verdict)[-1] == "gross_exposure: 2000.00 -> 0.00"


def test_decide_when_max_open_positions_reached_then_new_position_denied_adding_approved() -> None:
    # Arrange: 2 positions open, cap 2
    d = desk(RiskConfig(max_open_positions=2), capital="50000")
    d.hold("dep-1", "SOL/USDT", Side.BUY, "5")
    d.hold("dep-2", "ETH/USDT", Side.BUY, "5")
    d.start()

    # Act
    opens = d.pretrade.decide(entry(), CTX)
    adds = d.pretrade.decide(entry("SOL/USDT"), CTX)

    # Assert
    assert (opens.approved, opens.rule) == (False, "max_open_positions")
    assert (opens.numbers["value"], opens.numbers["limit"]) == ("2", "2")
    assert adds.approved


# ---------------------------------------------------------------- entries: the rules sizing does not apply
@pytest.mark.parametrize(("portfolio", "deployment", "scope", "state"), [
    (HALTED, ACTIVE, "portfolio", "HALTED"), (REDUCING, ACTIVE, "portfolio", "REDUCING"),
    (ACTIVE, HALTED, "deployment", "HALTED"), (ACTIVE, REDUCING, "deployment", "REDUCING"),
])
def test_decide_when_not_active_then_entry_denied_by_trading_state_before_any_cap(
        portfolio: TradingState, deployment: TradingState, scope: str, state: str) -> None:
    # Arrange: the gross cap leaves no room at all, yet the trading state is what is named
    d = desk(capital="50000")
    d.hold("dep-2", "SOL/USDT", Side.BUY, "120")
    d.start()

    # Act
    verdict = d.pretrade.decide(entry(), replace(CTX, portfolio_state=portfolio, deployment_state=deployment))

    # Assert
    assert not verdict.approved
    assert verdict.rule == "trading_state"
    assert verdict.reason.startswith(f"trading_state: {scope} is {state}")
    assert verdict.qty == 0


def test_decide_when_throttle_count_committed_within_window_then_entry_denied_exits_exempt() -> None:
    # Arrange: at most 2 orders per deployment per 60 s; dep-1 holds 5 SOL to exit
    d = desk(RiskConfig(throttle_count=2, throttle_window_s=60), capital="50000")
    d.hold("dep-1", "SOL/USDT", Side.BUY, "5")
    d.start()
    assert d.send("o1", entry("BTC/USDT", t=T0)).approved
    assert d.send("o2", entry("ETH/USDT", t=T0 + 10)).approved

    # Act
    third = d.pretrade.decide(entry("BTC/USDT", t=T0 + 20), CTX)
    other_dep = d.pretrade.decide(entry("BTC/USDT", dep="dep-2", t=T0 + 20), CTX)
    an_exit = d.pretrade.decide(exit_("5", "SOL/USDT", t=T0 + 20), CTX)
    later = d.pretrade.decide(entry("BTC/USDT", t=T0 + 60), CTX)

    # Assert: the order at T0 leaves the window at T0 + 60
    assert (third.approved, third.rule) == (False, "throttle")
    assert other_dep.approved
    assert an_exit.approved
    assert later.approved


def test_decide_when_price_outside_band_then_denied_price_band() -> None:
    # Arrange: last price 100, band 5%
    d = desk().start()

    # Act
    inside = d.pretrade.decide(entry(price="105"), CTX)
    outside = d.pretrade.decide(entry(price="105.5"), CTX)

    # Assert
    assert inside.approved
    assert (outside.approved, outside.rule) == (False, "price_band")
    assert (outside.numbers["value"], outside.numbers["limit"]) == ("105.5", "100.0")


# ---------------------------------------------------------------- exits
def held_btc(qty: str = "5", side: Side = Side.BUY) -> Desk:
    d = desk()
    d.hold("dep-1", "BTC/USDT", side, qty)
    return d.start()


@pytest.mark.parametrize("state", [ACTIVE, REDUCING])
def test_decide_when_exit_within_position_then_approved_in_active_and_reducing(state: TradingState) -> None:
    # Arrange
    d = held_btc()

    # Act
    verdict = d.pretrade.decide(exit_("5", reason=IntentReason.ROI), replace(CTX, portfolio_state=state,
                                                                              deployment_state=REDUCING))

    # Assert
    assert (verdict.approved, verdict.qty, verdict.reason) == (True, D(5), "reduces exposure")
    assert verdict.sizing is None


def test_decide_when_exit_of_short_then_buy_within_position_approved() -> None:
    # Arrange: short 4
    d = held_btc("4", Side.SELL)

    # Act
    verdict = d.pretrade.decide(exit_("4", side=Side.BUY), CTX)

    # Assert
    assert (verdict.approved, verdict.qty) == (True, D(4))


def test_decide_when_exit_above_position_then_denied_reduce_only() -> None:
    # Arrange
    d = held_btc()

    # Act
    verdict = d.pretrade.decide(exit_("6"), CTX)

    # Assert
    assert (verdict.approved, verdict.rule, verdict.qty) == (False, "reduce_only", 0)
    assert (verdict.numbers["value"], verdict.numbers["limit"]) == ("6.0", "5.0")


@pytest.mark.parametrize("scope", ["portfolio", "deployment"])
def test_decide_when_halted_then_exit_denied_trading_state(scope: str) -> None:
    # Arrange
    d = held_btc()
    ctx = replace(CTX, portfolio_state=HALTED) if scope == "portfolio" else replace(CTX, deployment_state=HALTED)

    # Act
    verdict = d.pretrade.decide(exit_("5"), ctx)

    # Assert
    assert (verdict.approved, verdict.rule) == (False, "trading_state")
    assert "HALTED" in verdict.reason


def test_decide_when_exit_a_float_hair_above_position_then_approved() -> None:
    # Arrange: the ledger's Decimal position seen as a float by the book
    d = held_btc("0.1")

    # Act: exactly the Decimal position, a float hair above 0.1 once converted and netted
    verdict = d.pretrade.decide(exit_("0.100000000001"), CTX)

    # Assert
    assert verdict.approved


def test_commit_when_exit_committed_then_second_exit_of_same_qty_denied() -> None:
    # Arrange
    d = held_btc()
    assert d.send("x1", exit_("5")).approved

    # Act: the same exit again (another reason, so another order) before the first fills
    verdict = d.pretrade.decide(exit_("5", reason=IntentReason.ROI), CTX)

    # Assert: the book's position net of the exit in flight is 0
    assert d.pretrade.position("dep-1", "BTC/USDT") == 0.0
    assert (verdict.approved, verdict.rule, verdict.reason) == (
        False, "reduce_only", "reduce_only: nothing to reduce (0 vs limit 0)")


def test_commit_when_exit_committed_then_cash_given_back_only_at_fill() -> None:
    # Arrange: long 5 at 100, bought with capital 10,000 -> cash 9,500
    d = held_btc()
    assert d.pretrade.view().cash == 9_500.0
    assert d.send("x1", exit_("5")).approved

    # Act
    held = d.pretrade.view()
    cash_in_flight, exposure_in_flight = held.cash, held.gross
    d.pretrade.on_fills(d.ledger, [d.fill("x1", D(5), D(100))])

    # Assert: the exit took the exposure off at once, gave the cash back at the fill
    assert (cash_in_flight, exposure_in_flight) == (9_500.0, 0.0)
    assert d.pretrade.view().cash == 10_000.0


# ---------------------------------------------------------------- holds, fills, cancels
def test_commit_when_entry_committed_then_second_entry_sees_less_free_cash() -> None:
    # Arrange: capital 3,000; the first entry of 2,000 holds 2,000 x 1.001 = 2,002
    d = desk(capital="3000").start()
    assert d.send("e1", entry()).qty == D(20)

    # Act
    second = d.pretrade.decide(entry("SOL/USDT"), CTX)

    # Assert: free cash 998 -> room 998 / 1.001 = 997.00
    assert second.numbers["free_cash"] == "998.00"
    assert second.numbers["gross_exposure"] == "2000.00"
    assert caps(second) == ["free_cash: 2000.00 -> 997.00"]
    assert second.qty == pytest.approx(D("9.970029970030"), rel=D("1e-8"))


def test_on_fills_when_entry_fills_then_hold_replaced_by_the_fill() -> None:
    # Arrange: an entry of 20 in flight
    d = desk().start()
    assert d.send("e1", entry()).qty == D(20)
    assert (d.pretrade.view().gross, d.pretrade.view().cash) == (2_000.0, 7_998.0)

    # Act: 12 fill at 101 with fee 1.212; 8 still in flight
    d.pretrade.on_fills(d.ledger, [d.fill("e1", D(12), D(101), D("1.212"))])
    part = d.pretrade.view()
    gross_part, cash_part, still_held = part.gross, part.cash, d.pretrade.held["e1"].qty
    # Act 2: the other 8 fill at 101 with fee 0.808
    d.pretrade.on_fills(d.ledger, [d.fill("e1", D(8), D(101), D("0.808"))])
    done = d.pretrade.view()

    # Assert: exposure at the last price (100) x (12 filled + 8 held); cash = ledger's less the hold of 8
    assert gross_part == pytest.approx(2_000.0)
    assert cash_part == pytest.approx(10_000 - 12 * 101 - 1.212 - 8 * 100 * 1.001)
    assert still_held == 8.0
    # Assert 2: exposure now at the fill qty, cash the ledger's, the hold gone
    assert "e1" not in d.pretrade.held
    assert (done.gross, done.dep_exposure[0], done.open_positions) == (2_000.0, 2_000.0, 1)
    assert done.cash == pytest.approx(10_000 - 20 * 101 - 2.02)
    assert d.pretrade.position("dep-1", "BTC/USDT") == 20.0


def test_settle_when_order_cancelled_then_hold_released() -> None:
    # Arrange
    d = desk().start()
    assert d.send("e1", entry()).approved
    assert d.pretrade.view().open_positions == 1

    # Act
    d.record(EventKind.ORDER_CANCELED, {"client_order_id": "e1", "reason": "test"})
    d.pretrade.settle(d.ledger)
    view = d.pretrade.view()

    # Assert
    assert d.pretrade.held == {}
    assert (view.gross, view.dep_exposure[0], view.open_positions, view.cash) == (0.0, 0.0, 0, 10_000.0)
    assert d.pretrade.decide(entry(), CTX).qty == D(20)


def test_mark_when_price_moves_then_exposure_remarked() -> None:
    # Arrange: long 5 BTC at 100
    d = held_btc()

    # Act
    d.pretrade.mark({"BTC/USDT": 110.0, "XRP/USDT": 1.0})  # a pair the desk does not trade is ignored

    # Assert
    view = d.pretrade.view()
    assert (view.gross, view.dep_exposure[0], view.group_long[0]) == (550.0, 550.0, 550.0)


def _figures(rs: RiskState) -> tuple[object, ...]:
    return (rs.gross, rs.dep_exposure, rs.open_positions, rs.cash, rs.pos_qty, rs.asset_long_qty,
            rs.asset_short_qty, rs.group_long, rs.group_short, rs.last_price, rs.ring, rs.ring_head)


def test_rebuild_when_from_the_ledger_then_same_view_as_kept_incrementally() -> None:
    # Arrange: a day of entries, partial fills, an exit in flight, a cancel, a price move, kept incrementally
    d = desk(capital="20000")
    d.hold("dep-2", "SOL/USDT", Side.SELL, "10", fee=D("1"))
    d.start()
    assert d.send("e1", entry(t=T0)).approved
    assert d.send("e2", entry("ETH/USDT", dep="dep-2", t=T0 + 5)).approved
    d.pretrade.on_fills(d.ledger, [d.fill("e1", D(20), D("100.5"), D("2.01"), T0 + 6),
                                   d.fill("e2", D(7), D("99.5"), D("0.6965"), T0 + 6)])
    assert d.send("x1", exit_("8", t=T0 + 10)).approved
    assert d.send("e3", entry("SOL/USDT", t=T0 + 11)).approved
    d.record(EventKind.ORDER_CANCELED, {"client_order_id": "e3", "reason": "test"}, T0 + 12)
    d.pretrade.settle(d.ledger)
    d.prices = {"BTC/USDT": 103.0, "ETH/USDT": 98.0, "SOL/USDT": 100.0}
    d.pretrade.mark(d.prices)
    kept = _figures(d.pretrade.view())

    # Act: a desk resumed from the same ledger
    resumed = PreTrade(d.cfg, DEPS, PAIRS, FEE, 20_000.0)
    resumed.rebuild(d.ledger, d.prices, T0 + 20)

    # Assert
    assert _figures(resumed.view()) == kept
    assert set(resumed.held) == set(d.pretrade.held) == {"e2", "x1"}
    ctx = replace(CTX, portfolio_equity=20_000.0)
    for intent in (entry("ETH/USDT", t=T0 + 20), exit_("12", t=T0 + 20), exit_("13", t=T0 + 20)):
        assert resumed.decide(intent, ctx) == d.pretrade.decide(intent, ctx)


def test_verdict_as_dict_when_sized_then_includes_sizing() -> None:
    # Act
    out = desk().start().pretrade.decide(entry(), CTX).as_dict()

    # Assert
    assert out["approved"] is True
    assert out["qty"] == "20.000000000000"
    assert isinstance(out["sizing"], dict)
    assert out["sizing"]["method"] == "fixed_fractional"
    assert out["sizing"]["caps_applied"] == []


# ---------------------------------------------------------------- properties over random books
PROP_CFG = RiskConfig(max_open_positions=8, max_gross_exposure=1.5, max_correlated_exposure=0.4,
                      max_position_fraction=0.5, risk_per_trade=0.02, throttle_count=50,
                      correlation_groups=GROUPS)
sides = st.sampled_from([Side.BUY, Side.SELL])
book_fills = st.tuples(st.sampled_from(DEPS), st.sampled_from(PAIRS), sides, st.integers(1, 60))
contexts = st.builds(Context, st.just(ACTIVE), st.just(ACTIVE), st.floats(2_000.0, 30_000.0),
                     st.floats(1_000.0, 20_000.0), st.floats(0.005, 0.2), st.sampled_from([1.0, 0.5]),
                     st.sampled_from([1.0, 0.5, 0.1]))
intents = st.tuples(st.sampled_from(DEPS), st.sampled_from(PAIRS), sides, st.floats(0.96, 1.04))


@st.composite
def random_desks(draw: st.DrawFn) -> Desk:
    """A ledger reached by arbitrary fills (possibly over its caps already), prices moved, some entries in flight."""
    d = desk(PROP_CFG, capital=str(draw(st.integers(1_000, 40_000))))
    for dep, pair, side, qty in draw(st.lists(book_fills, max_size=6)):
        d.hold(dep, pair, side, str(qty))
    d.prices = {p: 100.0 * draw(st.floats(0.8, 1.25)) for p in PAIRS}
    d.start()
    for i, (dep, pair, side, _drift) in enumerate(draw(st.lists(intents, max_size=3))):
        d.send(f"pre-e{i}", entry(pair, f"{d.prices[pair]:.6f}", side, dep), draw(contexts))
    return d


def _figures_for(rs: RiskState, dep: int, group: int) -> tuple[float, ...]:
    return (rs.gross, rs.dep_exposure[dep], rs.group_long[group] if group >= 0 else 0.0,
            rs.group_short[group] if group >= 0 else 0.0, -rs.cash)


def _breaches(before: tuple[float, ...], after: tuple[float, ...], ctx: Context) -> list[str]:
    """The caps a figure went past (or further past: a random book may start over its caps)."""
    group_cap = PROP_CFG.max_correlated_exposure * ctx.portfolio_equity
    caps = (PROP_CFG.max_gross_exposure * ctx.portfolio_equity, ctx.deployment_equity * ctx.allocation_fraction,
            group_cap, group_cap, 0.0)
    names = ("gross", "deployment", "group long", "group short", "free cash (negated)")
    return [f"{name}: {b} -> {x} beyond {cap}" for name, b, x, cap in zip(names, before, after, caps, strict=True)
            if not (x <= cap + 1e-9 * max(cap, 1.0) or x <= b + 1e-9 * max(abs(b), 1.0))]


@settings(max_examples=200, deadline=None)
@given(random_desks(), intents, contexts)
def test_decide_when_entry_approved_then_no_cap_breached_once_committed(
        d: Desk, order: tuple[str, str, Side, float], ctx: Context) -> None:
    # Arrange
    dep, pair, side, drift = order
    intent = entry(pair, f"{d.prices[pair] * drift:.6f}", side, dep, T0 + 1)
    di, group = d.pretrade.dep_index[dep], d.pretrade.asset_group[d.pretrade.pair_index[pair]]
    before = _figures_for(d.pretrade.view(), di, group)

    # Act
    verdict = d.pretrade.decide(intent, ctx)
    if not verdict.approved:
        return
    d.pretrade.commit("the-entry", intent, verdict)

    # Assert
    assert verdict.qty > 0
    assert _breaches(before, _figures_for(d.pretrade.view(), di, group), ctx) == []



@settings(max_examples=200, deadline=None)
@given(random_desks(), intents, contexts)
def test_decide_when_entry_approved_then_sized_to_the_least_of_its_size_and_every_room(
        d: Desk, order: tuple[str, str, Side, float], ctx: Context) -> None:
    """Shrink-to-fit: the notional is the smallest of fixed fractional x the ladder's multiplier and each cap's
    room (as entry_rooms reads the book), and the last cap named is the first rule whose room is that smallest."""
    # Arrange
    dep, pair, side, drift = order
    intent = entry(pair, f"{d.prices[pair] * drift:.6f}", side, dep, T0 + 1)
    di, ai = d.pretrade.dep_index[dep], d.pretrade.pair_index[pair]

    # Act
    verdict = d.pretrade.decide(intent, ctx)
    rooms = entry_rooms(di, ai, side.sign, float(intent.ref_price), d.pretrade.view(), d.pretrade.limits)

    # Assert
    if not verdict.approved:
        return
    sized = fixed_fractional(dec(round(ctx.deployment_equity * ctx.allocation_fraction, 8)), PROP_CFG.risk_per_trade,
                             intent.ref_price, ctx.stop_distance, PROP_CFG.max_position_fraction)
    wanted = float(sized.notional) * ctx.size_multiplier
    least = min(room for _rule, room in rooms)
    assert float(verdict.qty * intent.ref_price) == pytest.approx(min(wanted, least), rel=1e-8, abs=1e-6)
    room_cuts = [c.split(":")[0] for c in caps(verdict) if c.split(":")[0] in dict(rooms)]
    if least < wanted:
        assert room_cuts[-1] == next(rule for rule, room in rooms if room == least)
    else:
        assert room_cuts == []

@settings(max_examples=150, deadline=None)
@given(random_desks(), intents, contexts, st.booleans(), st.booleans())
def test_decide_when_halted_then_nothing_passes(d: Desk, order: tuple[str, str, Side, float], ctx: Context,
                                                 portfolio: bool, is_exit: bool) -> None:
    # Arrange
    dep, pair, side, drift = order
    price = f"{d.prices[pair] * drift:.6f}"
    held = d.pretrade.position(dep, pair)
    intent = exit_(f"{abs(held) or 1:.6f}", pair, Side.SELL if held > 0 else Side.BUY, dep, price=price) \
        if is_exit else entry(pair, price, side, dep)
    ctx = replace(ctx, portfolio_state=HALTED) if portfolio else replace(ctx, deployment_state=HALTED)

    # Act
    verdict = d.pretrade.decide(intent, ctx)

    # Assert
    assert (verdict.approved, verdict.rule, verdict.qty) == (False, "trading_state", 0)


@settings(max_examples=150, deadline=None)
@given(random_desks(), intents, contexts, st.booleans(), st.sampled_from([0.5, 1.0, 1.5]))
def test_decide_when_reducing_then_only_exits_pass(d: Desk, order: tuple[str, str, Side, float], ctx: Context,
                                                  portfolio: bool, fraction: float) -> None:
    """An entry is denied by the trading state, except one against the lane's position that the fast path sees
    reducing it (the loop sends entries only on flat lanes); an exit passes if and only if it is within the
    position net of exits in flight. Nothing approved makes a position larger."""
    # Arrange: an entry, and an exit of part, all or more than all of the position
    dep, pair, side, _drift = order
    ctx = replace(ctx, portfolio_state=REDUCING) if portfolio else replace(ctx, deployment_state=REDUCING)
    held = d.pretrade.position(dep, pair)
    exit_side = Side.SELL if held > 0 else Side.BUY
    an_exit = exit_(f"{abs(held) * fraction:.6f}", pair, exit_side, dep, price=f"{d.prices[pair]:.6f}")
    an_entry = entry(pair, f"{d.prices[pair]:.6f}", side, dep)

    # Act
    exit_verdict = d.pretrade.decide(an_exit, ctx)
    entry_verdict = d.pretrade.decide(an_entry, ctx)

    # Assert
    against = held * side.sign < 0
    if not against:
        assert (entry_verdict.approved, entry_verdict.rule) == (False, "trading_state")
    elif entry_verdict.approved:
        assert float(entry_verdict.qty) <= abs(held)
    want = float(an_exit.qty or 0)
    reduces = held != 0 and want > 0 and want <= abs(held) * (1 + 1e-9)
    assert exit_verdict.approved is reduces, exit_verdict
    if not reduces:
        assert exit_verdict.rule in ("reduce_only", "invalid_order")
    else:
        d.pretrade.commit("the-exit", an_exit, exit_verdict)
        assert abs(d.pretrade.position(dep, pair)) < abs(held) * (1 - fraction) + 1e-6
