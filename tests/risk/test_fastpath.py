"""Tests of execdesk.risk.fastpath: every rule allowing and denying with hand numbers, the bookkeeping of
RiskState, the rooms sizing reads (entry_rooms, entry_room), and properties (approved orders breach no cap
once applied; HALTED and REDUCING). How PreTrade sizes with these rooms is tested in test_pretrade.py."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from execdesk.domain.types import TradingState
from execdesk.risk.config import RiskConfig
from execdesk.risk.fastpath import (
    ACTIVE,
    HALTED,
    PORTFOLIO,
    REDUCING,
    ROOM_RULES,
    Denial,
    FastLimits,
    FastOrder,
    RiskState,
    check,
    entry_room,
    entry_room_values,
    entry_rooms,
)

LIMITS = FastLimits(max_order_notional=2000.0, max_open_positions=3, deployment_exposure_fraction=1.0,
                    max_gross_exposure=1.0, max_correlated_exposure=0.30, throttle_count=2, throttle_window_s=10.0,
                    price_band=0.05, fee_rate=0.001)


def book(cash: float = 10_000.0, dep_equity: float = 5_000.0, limits: FastLimits = LIMITS) -> RiskState:
    """2 deployments x 3 assets at 100; assets 0 and 1 correlated (group 0), asset 2 alone; equity 10,000."""
    return RiskState.new(2, 3, equity=10_000.0, cash=cash, dep_equity=[dep_equity, dep_equity],
                         asset_group=[0, 0, -1], last_price=[100.0, 100.0, 100.0], limits=limits)


def buy(qty: float, asset: int = 0, dep: int = 0, price: float = 100.0, t: float = 1000.0) -> FastOrder:
    return FastOrder(dep, asset, 1, qty, price, False, t)


def sell(qty: float, asset: int = 0, dep: int = 0, price: float = 100.0, t: float = 1000.0,
         reduce_only: bool = False) -> FastOrder:
    return FastOrder(dep, asset, -1, qty, price, reduce_only, t)


def rule(order: FastOrder, state: RiskState, limits: FastLimits = LIMITS) -> str:
    denial = check(order, state, limits)
    return "approved" if denial is None else denial.rule


def fill(state: RiskState, order: FastOrder, fee_rate: float = 0.001) -> None:
    state.apply_fill(order.deployment, order.asset, order.side * order.qty, order.price,
                     order.qty * order.price * fee_rate)


# ---------------------------------------------------------------- each rule, allowing and denying
def test_check_when_entry_within_every_limit_then_none() -> None:
    assert check(buy(10), book(), LIMITS) is None


def test_check_when_qty_or_price_not_positive_and_finite_then_invalid_order() -> None:
    state = book()
    assert rule(buy(0), state) == "invalid_order"
    assert rule(buy(1, price=math.nan), state) == "invalid_order"
    assert rule(buy(math.inf), state) == "invalid_order"


def test_check_when_cancel_then_approved_in_every_state() -> None:
    state = book()
    state.set_state(PORTFOLIO, TradingState.HALTED)
    state.set_state(0, TradingState.HALTED)
    assert check(FastOrder(0, 0, 1, 0.0, 0.0, cancel=True), state, LIMITS) is None


@pytest.mark.parametrize("scope", [PORTFOLIO, 0])
def test_check_when_halted_then_entries_and_exits_denied(scope: int) -> None:
    state = book()
    fill(state, buy(5))
    state.set_state(scope, TradingState.HALTED)
    denial = check(sell(5, reduce_only=True), state, LIMITS)
    assert denial is not None
    assert (denial.rule, denial.value) == ("trading_state", HALTED)
    assert "HALTED" in denial.reason
    assert rule(buy(1, asset=1), state) == "trading_state"


@pytest.mark.parametrize("scope", [PORTFOLIO, 0])
def test_check_when_reducing_then_only_orders_that_reduce_pass(scope: int) -> None:
    state = book()
    fill(state, buy(5))
    state.set_state(scope, TradingState.REDUCING)
    assert rule(buy(1), state) == "trading_state"  # adds
    assert rule(buy(1, asset=1), state) == "trading_state"  # opens
    assert rule(sell(6), state) == "trading_state"  # flips: more than the position
    assert rule(sell(5, reduce_only=True), state) == "approved"
    assert rule(sell(2), state) == "approved"  # reduces, even unflagged
    state.set_state(scope, TradingState.ACTIVE)
    assert rule(buy(1), state) == "approved"


def test_check_when_reduce_only_does_not_reduce_then_denied() -> None:
    state = book()
    denial = check(sell(1, reduce_only=True), state, LIMITS)
    assert denial is not None
    assert (denial.rule, denial.reason) == ("reduce_only", "nothing to reduce")
    fill(state, buy(5))
    assert rule(FastOrder(0, 0, 1, 1.0, 100.0, True, 1000.0), state) == "reduce_only"  # same side
    denial = check(sell(6, reduce_only=True), state, LIMITS)
    assert denial is not None
    assert (denial.rule, denial.value, denial.limit) == ("reduce_only", 6.0, 5.0)
    assert rule(sell(5, reduce_only=True), state) == "approved"


def test_check_when_notional_above_max_order_notional_then_denied() -> None:
    state = book(dep_equity=10_000.0)
    assert rule(buy(20), state) == "approved"  # 2,000 = the cap
    denial = check(buy(20.01), state, LIMITS)
    assert denial is not None
    assert denial.rule == "max_order_notional"
    assert (denial.value, denial.limit) == (pytest.approx(2001.0), 2000.0)


def test_check_when_open_positions_at_limit_then_only_new_positions_denied() -> None:
    state = RiskState.new(2, 4, equity=100_000.0, cash=100_000.0, dep_equity=[50_000.0] * 2,
                          last_price=[100.0] * 4, limits=LIMITS)
    for asset in range(3):
        fill(state, buy(1, asset=asset))
    assert state.open_positions == 3
    denial = check(buy(1, asset=3), state, LIMITS)
    assert denial is not None
    assert (denial.rule, denial.value, denial.limit) == ("max_open_positions", 3, 3)
    assert rule(buy(1, asset=0), state) == "approved"  # adds to an open position: the count stays 3


def test_check_when_deployment_exposure_above_its_equity_then_denied() -> None:
    state = book()  # deployment equity 5,000
    fill(state, buy(45, asset=2))  # 4,500 on asset 2 (no group)
    assert rule(buy(5), state) == "approved"  # 5,000
    denial = check(buy(6), state, LIMITS)
    assert denial is not None
    assert (denial.rule, denial.value, denial.limit) == ("deployment_exposure", 5100.0, 5000.0)
    # valued at the higher of the order's price and the mark: 5 x 101 = 505 -> 5,005
    assert rule(buy(5, price=101.0), state) == "deployment_exposure"
    assert rule(buy(1, dep=1), state) == "approved"  # the other deployment has its own room


def test_check_when_gross_exposure_above_cap_then_denied() -> None:
    state = book(cash=50_000.0, dep_equity=10_000.0)
    fill(state, buy(45, asset=2, dep=1))
    fill(state, buy(45, asset=2, dep=0))  # gross 9,000 of equity 10,000
    assert rule(buy(10, asset=2), state) == "approved"  # 10,000
    denial = check(buy(11, asset=2), state, LIMITS)
    assert denial is not None
    assert (denial.rule, denial.value, denial.limit) == ("gross_exposure", 10_100.0, 10_000.0)


def test_check_when_correlated_group_above_cap_then_denied_in_its_direction_only() -> None:
    state = book()  # cap 0.30 x 10,000 = 3,000 per group and direction
    fill(state, buy(20, asset=0, dep=1))  # group 0 long 2,000
    assert rule(buy(10, asset=1), state) == "approved"  # long 3,000
    denial = check(buy(11, asset=1), state, LIMITS)
    assert denial is not None
    assert (denial.rule, denial.value, denial.limit) == ("correlated_exposure", 3100.0, 3000.0)
    assert rule(buy(11, asset=2), state) == "approved"  # asset 2 is in no group
    fill(state, sell(25, asset=1))  # group 0 short 2,500 (longs and shorts do not offset)
    assert state.group_exposure(0) == -500.0
    assert rule(sell(5, asset=1, dep=1), state) == "approved"  # short 3,000
    assert rule(sell(6, asset=1, dep=1), state) == "correlated_exposure"  # short 3,100
    assert rule(buy(10, asset=1), state) == "approved"  # long 3,000: the short is no room
    assert rule(buy(11, asset=1, dep=1), state) == "correlated_exposure"
    assert rule(sell(20, asset=0, dep=1, reduce_only=True), state) == "approved"  # exits: never capped


def test_check_when_notional_plus_fee_above_free_cash_then_denied() -> None:
    state = book(cash=1000.0)
    assert rule(buy(9.99), state) == "approved"  # 999 + 0.999 fee
    denial = check(buy(10), state, LIMITS)
    assert denial is not None
    assert (denial.rule, denial.value, denial.limit) == ("free_cash", pytest.approx(1001.0), 1000.0)
    assert rule(sell(10), state) == "free_cash"  # a short entry takes collateral too


def test_check_when_throttle_full_within_window_then_denied_and_exits_exempt() -> None:
    state = book()  # 2 orders per 10 s
    state.record_order(buy(1, t=0.0))
    assert rule(buy(1, t=9.0), state) == "approved"
    state.record_order(buy(1, t=5.0))
    denial = check(buy(1, t=9.0), state, LIMITS)
    assert denial is not None
    assert denial.rule == "throttle"
    assert rule(buy(1, t=10.0), state) == "approved"  # the order at t=0 has left the window
    assert rule(buy(1, dep=1, t=9.0), state) == "approved"  # per deployment
    fill(state, buy(3))
    assert rule(sell(3, reduce_only=True, t=9.0), state) == "approved"  # exits are never throttled
    state.record_order(buy(1, t=10.0))  # the ring rolls: now t=5 and t=10
    assert rule(buy(1, t=14.9), state) == "throttle"
    assert rule(buy(1, t=15.0), state) == "approved"


def test_check_when_price_outside_band_of_last_then_denied() -> None:
    state = book()
    assert rule(buy(1, price=105.0), state) == "approved"
    assert rule(buy(1, price=95.0), state) == "approved"
    denial = check(buy(1, price=105.5), state, LIMITS)
    assert denial is not None
    assert (denial.rule, denial.value, denial.limit) == ("price_band", 105.5, 100.0)
    assert rule(buy(1, price=94.9), state) == "price_band"
    fill(state, buy(3))
    assert rule(sell(3, reduce_only=True, price=80.0), state) == "price_band"  # exits too
    state.last_price[1] = 0.0
    assert rule(buy(1, asset=1), state) == "price_band"  # no last price: no sanity, no order


def test_check_when_several_rules_fail_then_first_in_order_named() -> None:
    state = book(cash=100.0)
    state.apply_fill(1, 0, 20.0, 100.0)  # group 0 net +2,000
    state.cash = 100.0
    state.record_order(buy(1, t=999.0))
    state.record_order(buy(1, t=999.5))
    # notional 3,000 > 2,000; also deployment, correlated, cash, throttle and the band
    assert rule(buy(30, price=110.0), state) == "max_order_notional"
    assert rule(buy(15, price=110.0), state) == "correlated_exposure"
    assert rule(buy(0.5, price=110.0), state) == "throttle"
    assert rule(buy(0.5, price=110.0, t=2000.0), state) == "price_band"


# ---------------------------------------------------------------- the snapshot's bookkeeping
def test_apply_fill_and_set_price_keep_exposure_cash_and_count() -> None:
    state = book()
    fill(state, buy(10, asset=0))  # long 10 @ 100, fee 1
    assert (state.open_positions, state.cash) == (1, pytest.approx(10_000 - 1000 - 1))
    assert (state.gross, state.dep_exposure[0], state.group_long[0]) == (1000.0, 1000.0, 1000.0)
    state.set_price(0, 110.0)
    assert (state.gross, state.dep_exposure[0], state.group_long[0]) == (1100.0, 1100.0, 1100.0)
    assert state.asset_exposure(0) == 1100.0
    fill(state, sell(10, asset=0, price=110.0))  # closes: collateral 1,000 + P&L 100 - fee 1.1
    assert state.open_positions == 0
    assert state.position(0, 0) == 0.0
    assert state.cash == pytest.approx(10_000 - 1 + 100 - 1.1)
    assert (state.gross, state.dep_exposure[0], state.group_long[0]) == (0.0, 0.0, 0.0)


def test_apply_fill_when_short_round_trip_and_flip_then_pnl_and_signs_right() -> None:
    state = book()
    state.apply_fill(0, 1, -10.0, 100.0)  # short 10 @ 100
    assert (state.group_short[0], state.group_exposure(0)) == (1000.0, -1000.0)
    assert state.cash == 9000.0
    state.set_price(1, 90.0)
    state.apply_fill(0, 1, 15.0, 90.0)  # covers 10 (P&L +100), opens long 5 @ 90
    assert state.position(0, 1) == 5.0
    assert state.avg_price[1] == 90.0
    assert state.cash == pytest.approx(9000.0 + 1000.0 + 100.0 - 450.0)
    assert (state.gross, state.group_long[0], state.group_short[0], state.open_positions) == (450.0, 450.0, 0.0, 1)


def test_from_config_when_built_then_takes_risk_config_limits() -> None:
    limits = FastLimits.from_config(RiskConfig(max_order_notional=500, max_open_positions=7, max_gross_exposure=2.0),
                                    price_band=0.02)
    assert (limits.max_order_notional, limits.max_open_positions, limits.max_gross_exposure) == (500.0, 7, 2.0)
    assert (limits.price_band, limits.max_correlated_exposure) == (0.02, 0.30)
    assert FastLimits.from_config(RiskConfig()).max_order_notional == math.inf
    with pytest.raises(ValueError, match="throttle_count"):
        FastLimits(throttle_count=0)


def test_entry_room_when_caps_bind_then_smallest_room_and_it_passes() -> None:
    state = book(cash=50_000.0)  # deployment 5,000; gross 10,000; group 3,000; order 2,000
    assert entry_room(0, 2, 1, 100.0, state, LIMITS) == 2000.0  # the per-order cap
    fill(state, buy(45, asset=2))
    assert entry_room(0, 2, 1, 100.0, state, LIMITS) == 500.0  # deployment: 5,000 - 4,500
    assert entry_room(0, 2, 1, 80.0, state, LIMITS) == 400.0  # 5 at 80: valued at the mark, 100 (band aside)
    fill(state, buy(28, asset=0, dep=1))
    assert entry_room(1, 1, 1, 100.0, state, LIMITS) == pytest.approx(200.0)  # group long 2,800 of 3,000
    assert entry_room(1, 1, -1, 100.0, state, LIMITS) == pytest.approx(2000.0)  # the short side is empty
    state.cash = 100.1
    assert entry_room(1, 1, 1, 100.0, state, LIMITS) == pytest.approx(100.0)  # cash less the fee
    state.cash = -5.0
    assert entry_room(1, 1, 1, 100.0, state, LIMITS) == 0.0
    state.cash = 50_000.0
    for dep, asset, side in ((0, 2, 1), (1, 1, 1), (1, 1, -1), (1, 2, -1)):
        qty = entry_room(dep, asset, side, 100.0, state, LIMITS) / 100.0 * (1 - 1e-9)
        assert check(FastOrder(dep, asset, side, qty, 100.0), state, LIMITS) is None
        assert check(FastOrder(dep, asset, side, qty * 1.001, 100.0), state, LIMITS) is not None


def test_entry_rooms_when_caps_bind_then_each_rule_in_check_order_and_entry_room_is_the_min() -> None:
    # Arrange: dep 1 long 28 of asset 0 (group 0: long 2,800 of 3,000); dep 0 long 45 of asset 2 (4,500);
    # gross 7,300 of 10,000; cash 1,001
    state = book(cash=50_000.0)
    fill(state, buy(28, asset=0, dep=1), 0.0)
    fill(state, buy(45, asset=2), 0.0)
    state.cash = 1001.0

    # Act
    grouped = entry_rooms(1, 1, 1, 100.0, state, LIMITS)
    alone = entry_rooms(0, 2, 1, 100.0, state, LIMITS)
    below_mark = entry_rooms(0, 2, 1, 80.0, state, LIMITS)

    # Assert: (rule, room) in the check's order; the correlated rule only for an asset in a group
    assert grouped == [("max_order_notional", 2000.0), ("deployment_exposure", 2200.0),  # 5,000 - 2,800
                       ("gross_exposure", 2700.0), ("correlated_exposure", pytest.approx(200.0)),  # 3,000 - 2,800
                       ("free_cash", pytest.approx(1000.0))]  # 1,001 / 1.001
    assert [rule for rule, _room in alone] == ["max_order_notional", "deployment_exposure", "gross_exposure",
                                               "free_cash"]
    assert alone[1] == ("deployment_exposure", 500.0)  # 5,000 - 4,500
    # an order below the mark is valued at the mark: 500 of exposure is 400 at 80 (the caps on money do not scale)
    assert below_mark[1] == ("deployment_exposure", 400.0)
    assert below_mark[0] == alone[0]
    assert below_mark[-1] == alone[-1]
    for dep, asset, side, price in ((1, 1, 1, 100.0), (0, 2, 1, 100.0), (0, 2, 1, 80.0), (1, 1, -1, 100.0)):
        rooms = entry_rooms(dep, asset, side, price, state, LIMITS)
        assert entry_room(dep, asset, side, price, state, LIMITS) == min(room for _rule, room in rooms)


def test_entry_rooms_when_a_cap_is_already_breached_then_room_zero_not_negative() -> None:
    # Arrange: dep 0 holds 60 of asset 2 = 6,000 of its 5,000
    state = book(cash=50_000.0)
    fill(state, buy(60, asset=2), 0.0)
    state.cash = -5.0

    # Act
    rooms = dict(entry_rooms(0, 2, 1, 100.0, state, LIMITS))

    # Assert
    assert (rooms["deployment_exposure"], rooms["free_cash"]) == (0.0, 0.0)
    assert rooms["gross_exposure"] == 4000.0


def test_entry_room_values_when_grouped_or_alone_then_entry_rooms_in_rule_order_and_inf_without_group() -> None:
    # Arrange: the book of the test above: dep 1 long 28 of asset 0 (group 0), dep 0 long 45 of asset 2, cash 1,001
    state = book(cash=50_000.0)
    fill(state, buy(28, asset=0, dep=1), 0.0)
    fill(state, buy(45, asset=2), 0.0)
    state.cash = 1001.0

    # Act
    grouped = entry_room_values(1, 1, 1, 100.0, state, LIMITS)
    alone = entry_room_values(0, 2, 1, 80.0, state, LIMITS)

    # Assert: the same rooms as entry_rooms, as a tuple in ROOM_RULES' order; no group, no correlated cap
    assert list(zip(ROOM_RULES, grouped, strict=True)) == entry_rooms(1, 1, 1, 100.0, state, LIMITS)
    assert alone[3] == math.inf
    assert [(r, room) for r, room in zip(ROOM_RULES, alone, strict=True) if r != "correlated_exposure"] == \
        entry_rooms(0, 2, 1, 80.0, state, LIMITS)


def test_record_order_at_when_recorded_then_the_same_ring_as_record_order() -> None:
    # Arrange
    by_order, by_time = book(), book()

    # Act: three orders of dep 0 into a ring of two, one of dep 1
    for dep, t in ((0, 1.0), (0, 2.5), (1, 3.0), (0, 4.0)):
        by_order.record_order(FastOrder(dep, 0, 1, 1.0, 1.0, False, t))
        by_time.record_order_at(dep, t)

    # Assert
    assert (by_time.ring, by_time.ring_head) == (by_order.ring, by_order.ring_head) == ([4.0, 2.5, 3.0, -math.inf],
                                                                                      [1, 1])
    assert rule(buy(1, t=5.0), by_time) == "throttle"  # 2 orders of dep 0 within 10 s


@pytest.mark.parametrize("scope", [PORTFOLIO, 0])
@pytest.mark.parametrize("state_", [TradingState.HALTED, TradingState.REDUCING])
def test_check_when_trading_state_denies_then_its_figures_are_the_states(scope: int, state_: TradingState) -> None:
    # Arrange
    state = book()
    state.set_state(scope, state_)

    # Act
    denial = check(buy(1), state, LIMITS)

    # Assert
    assert denial is not None
    who = "portfolio" if scope == PORTFOLIO else "deployment"
    assert (denial.rule, denial.reason.split(" is ")[0], denial.as_numbers()) == (
        "trading_state", who, {"value": "2" if state_ is TradingState.HALTED else "1", "limit": "0"})
    assert denial.describe().startswith(f"trading_state: {who} is {state_.value}")


def test_denial_as_numbers_when_recorded_then_strings() -> None:
    assert Denial("free_cash", "r", 1001.0, 1000.0).as_numbers() == {"value": "1001.0", "limit": "1000.0"}


# ---------------------------------------------------------------- properties
N_DEP, N_ASSET = 3, 5
GROUPS = [0, 0, 1, 1, -1]
PROP_LIMITS = FastLimits(max_order_notional=5_000.0, max_open_positions=6, deployment_exposure_fraction=1.5,
                         max_gross_exposure=2.0, max_correlated_exposure=0.5, throttle_count=3,
                         throttle_window_s=5.0, price_band=0.05, fee_rate=0.001)
prices = st.floats(10.0, 1000.0)
qtys = st.floats(0.01, 80.0)
fills = st.tuples(st.integers(0, N_DEP - 1), st.integers(0, N_ASSET - 1), st.sampled_from([1, -1]), qtys,
                  st.floats(0.97, 1.03))
orders = st.builds(FastOrder, st.integers(0, N_DEP - 1), st.integers(0, N_ASSET - 1), st.sampled_from([1, -1]),
                   st.floats(0.01, 12.0), prices, st.booleans(), st.floats(0.0, 20.0))


@st.composite
def random_books(draw: st.DrawFn) -> RiskState:
    """A book reached by arbitrary fills (possibly over its caps already) and price moves."""
    last = draw(st.lists(prices, min_size=N_ASSET, max_size=N_ASSET))
    state = RiskState.new(N_DEP, N_ASSET, equity=draw(st.floats(5_000.0, 50_000.0)),
                          cash=draw(st.floats(0.0, 50_000.0)), dep_equity=draw(
                              st.lists(st.floats(1_000.0, 20_000.0), min_size=N_DEP, max_size=N_DEP)),
                          asset_group=GROUPS, last_price=last, limits=PROP_LIMITS)
    for d, a, side, qty, drift in draw(st.lists(fills, max_size=8)):
        state.apply_fill(d, a, side * qty, state.last_price[a] * drift, 0.0)
        state.set_price(a, state.last_price[a] * drift)
    for t in draw(st.lists(st.floats(0.0, 20.0), max_size=4)):
        state.record_order(FastOrder(draw(st.integers(0, N_DEP - 1)), 0, 1, 1.0, 1.0, False, t))
    return state


def _order_near_market(state: RiskState, order: FastOrder, drift: float) -> FastOrder:
    return FastOrder(order.deployment, order.asset, order.side, order.qty, state.last_price[order.asset] * drift,
                     order.reduce_only, order.timestamp)


def _figures(state: RiskState, d: int, a: int) -> tuple[float, ...]:
    g = state.asset_group[a]
    return (state.open_positions, state.dep_exposure[d], state.gross,
            state.group_long[g] if g >= 0 else 0.0, state.group_short[g] if g >= 0 else 0.0)


@settings(max_examples=200, deadline=None)
@given(random_books(), orders, st.floats(0.9, 1.1))
def test_entry_room_values_when_any_book_then_entry_rooms_and_entry_room_the_min(state: RiskState, order: FastOrder,
                                                                               drift: float) -> None:
    # Arrange
    d, a, side, price = order.deployment, order.asset, order.side, state.last_price[order.asset] * drift

    # Act
    values = entry_room_values(d, a, side, price, state, PROP_LIMITS)

    # Assert
    rooms = [(r, room) for r, room in zip(ROOM_RULES, values, strict=True)
             if r != "correlated_exposure" or GROUPS[a] >= 0]
    assert rooms == entry_rooms(d, a, side, price, state, PROP_LIMITS)
    assert min(values) == entry_room(d, a, side, price, state, PROP_LIMITS)
    assert all(room >= 0.0 for room in values)


@settings(max_examples=400, deadline=None)
@given(random_books(), orders, st.floats(0.96, 1.04))
def test_check_when_order_passes_then_no_cap_breached_once_applied(state: RiskState, order: FastOrder,
                                                                   drift: float) -> None:
    order = _order_near_market(state, order, drift)
    d, a = order.deployment, order.asset
    if check(order, state, PROP_LIMITS) is not None:
        return
    before = _figures(state, d, a)
    q0 = state.position(d, a)
    entry = not (q0 * order.side < 0 and order.qty <= abs(q0))
    fill(state, order, PROP_LIMITS.fee_rate)
    after = _figures(state, d, a)
    caps = (PROP_LIMITS.max_open_positions, PROP_LIMITS.deployment_exposure_fraction * state.dep_equity[d],
            PROP_LIMITS.max_gross_exposure * state.equity, PROP_LIMITS.max_correlated_exposure * state.equity,
            PROP_LIMITS.max_correlated_exposure * state.equity)
    names = ("positions", "deployment", "gross", "group long", "group short")
    for name, b, x, cap in zip(names, before, after, caps, strict=True):
        tol = 1e-9 * max(cap, 1.0)
        assert x <= cap + tol or x <= b + tol, f"{name}: {b} -> {x} beyond cap {cap}"
    if entry:
        assert state.cash >= -1e-9 * order.qty * order.price


@settings(max_examples=300, deadline=None)
@given(random_books(), orders, st.floats(0.96, 1.04), st.booleans(), st.booleans())
def test_check_when_halted_then_nothing_but_cancels_passes(state: RiskState, order: FastOrder, drift: float,
                                                          portfolio: bool, cancel: bool) -> None:
    order = _order_near_market(state, order, drift)
    state.set_state(PORTFOLIO if portfolio else order.deployment, TradingState.HALTED)
    if cancel:
        order = FastOrder(order.deployment, order.asset, order.side, order.qty, order.price, cancel=True)
        assert check(order, state, PROP_LIMITS) is None
    else:
        denial = check(order, state, PROP_LIMITS)
        assert denial is not None
        assert denial.rule == "trading_state"


@settings(max_examples=300, deadline=None)
@given(random_books(), orders, st.floats(0.96, 1.04), st.booleans())
def test_check_when_reducing_then_only_reducing_orders_pass(state: RiskState, order: FastOrder, drift: float,
                                                           portfolio: bool) -> None:
    order = _order_near_market(state, order, drift)
    state.set_state(PORTFOLIO if portfolio else order.deployment, TradingState.REDUCING)
    q0 = state.position(order.deployment, order.asset)
    reduces = q0 * order.side < 0 and order.qty <= abs(q0)
    denial = check(order, state, PROP_LIMITS)
    if reduces:
        assert denial is None  # within the band, never throttled, no cap applies
        fill(state, order)
        assert abs(state.position(order.deployment, order.asset)) < abs(q0)
    else:
        assert denial is not None
        assert denial.rule == ("reduce_only" if order.reduce_only else "trading_state")
    if order.reduce_only and reduces:  # the reduce-only orders that reduce: all through
        assert denial is None


def test_state_codes_when_ordered_then_strictness() -> None:
    assert ACTIVE < REDUCING < HALTED
