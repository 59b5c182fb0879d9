"""Tests of the lean order path of execdesk.risk.pretrade (issue 17): decide on the book's floats, Decimal only for
what is recorded, the verdict's words deferred to when it is recorded. The property test holds the lean decide to
a reference — the eager, all-Decimal decide it replaced, kept here — to the last digit of every recorded field."""

from __future__ import annotations

import json
import math
from dataclasses import replace
from decimal import ROUND_DOWN, Decimal
from types import SimpleNamespace
from typing import Any

from hypothesis import event, given, settings
from hypothesis import strategies as st

from execdesk.domain.types import QUANTUM, OrderIntent, Side, dec
from execdesk.risk.fastpath import PORTFOLIO, FastOrder, check, entry_rooms
from execdesk.risk.pretrade import Context, PreTrade, Verdict
from execdesk.risk.sizing import SizeResult, entry_size
from tests.risk.test_pretrade import (
    CTX,
    DEPS,
    PAIRS,
    PROP_CFG,
    T0,
    Desk,
    _figures,
    desk,
    entry,
    exit_,
    intents,
    random_desks,
)

D = Decimal
HAIR = 1e-9


def _money(x: float) -> str:
    return f"{round(x, 2) + 0.0:.2f}"


def reference_decide(pt: PreTrade, intent: OrderIntent, ctx: Context) -> Verdict:
    """The verdict as decide computed it before the order path was made lean: every word at once, the size through
    entry_size (Decimal), the rooms through entry_rooms. The lean decide must answer the same, field for field."""
    rs = pt.view()
    d, a = pt.dep_index[intent.deployment_id], pt.pair_index[intent.pair]
    rs.set_state(PORTFOLIO, ctx.portfolio_state)
    rs.set_state(d, ctx.deployment_state)
    side = 1 if intent.side.value == "BUY" else -1
    price = float(intent.ref_price)
    if intent.reduce_only:
        want = float(intent.qty or 0)
        held = abs(rs.position(d, a))
        if held < want <= held * (1.0 + HAIR):
            want = held
        denial = check(FastOrder(d, a, side, want, price, True, float(intent.signal_time)), rs, pt.limits)
        if denial is not None:
            return Verdict(False, denial.rule, denial.describe(), D(0), denial.as_numbers())
        return Verdict(True, "approved", "reduces exposure", intent.qty or D(0), {"position_qty": repr(held)})
    cfg = pt.cfg
    equity_in_use = ctx.deployment_equity * ctx.allocation_fraction
    rs.set_equity(ctx.portfolio_equity)
    rs.set_equity(equity_in_use, d)
    size = entry_size(ctx.sizing, dec(round(equity_in_use, 8)), intent.ref_price, ctx.stop_distance,
                      cfg.risk_per_trade, cfg.max_position_fraction, ctx.validation, ctx.atr)
    caps = list(size.caps_applied)
    wanted = float(size.notional)
    notional = wanted
    if ctx.size_multiplier < 1.0:
        cut = notional * ctx.size_multiplier
        caps.append(f"drawdown_ladder: {notional:.2f} x {ctx.size_multiplier} -> {cut:.2f}")
        notional = cut
    rooms = entry_rooms(d, a, side, price, rs, pt.limits)
    for rule, room in rooms:
        if notional > room:
            caps.append(f"{rule}: {notional:.2f} -> {room:.2f}")
            notional = room
    at_room = notional >= min(room for _rule, room in rooms) * (1.0 - HAIR)
    qty = (dec(notional * (1.0 - HAIR) if at_room else notional) / intent.ref_price).quantize(
        QUANTUM, ROUND_DOWN) if intent.ref_price > 0 else D(0)
    numbers = {"deployment_equity": _money(ctx.deployment_equity),
               "allocation_fraction": repr(ctx.allocation_fraction), "equity_in_use": _money(equity_in_use),
               "portfolio_equity": _money(ctx.portfolio_equity), "gross_exposure": _money(rs.gross),
               "deployment_exposure": _money(rs.dep_exposure[d]), "free_cash": _money(rs.cash),
               "notional": _money(notional)}
    sized = SizeResult(qty, dec(qty * intent.ref_price), size.method, size.formula, size.inputs, caps)
    probe = float(qty) if qty > 0 else float(QUANTUM)
    denial = check(FastOrder(d, a, side, probe, price, False, float(intent.signal_time)), rs, pt.limits)
    if denial is not None:
        numbers.update(denial.as_numbers())
        return Verdict(False, denial.rule, denial.describe(), D(0), numbers, sized)
    if qty <= 0 or notional < wanted / 100:
        rule = caps[-1].split(":")[0] if caps else "size"
        return Verdict(False, rule, "no room for a position of useful size", D(0), numbers, sized)
    return Verdict(True, "approved", "within limits", qty, numbers, sized)


def _record(verdict: Verdict) -> str:
    """The verdict as the order manager records it (and the qty it sends)."""
    return json.dumps({"verdict": verdict.as_dict(), "qty": str(verdict.qty)})


def _sizing(**settings: Any) -> Any:
    from execdesk.strategy.bundle import Sizing

    return Sizing.model_validate(settings)


SIZINGS = [None, _sizing(method="fixed_fractional", risk_per_trade=0.03), _sizing(method="fixed_fractional"),
           _sizing(method="kelly", fraction=0.5, cap=0.2),
           _sizing(method="volatility_target", target_risk=0.01, atr_multiple=2.0, atr_period=10)]
REPORT = SimpleNamespace(returns=[0.02, 0.02, 0.02, -0.01], win_rate=0.75, profit_factor=6.0)
lean_contexts = st.builds(
    Context, st.sampled_from([CTX.portfolio_state]), st.sampled_from([CTX.deployment_state]),
    st.floats(0.0, 30_000.0), st.floats(0.0, 20_000.0), st.sampled_from([0.0, 0.005, 0.05, 0.2, 1.5]),
    st.sampled_from([1.0, 0.5, 0.999, 0.0]), st.sampled_from([1.0, 0.5, 0.1, 1 / 3]), st.sampled_from(SIZINGS),
    st.sampled_from([None, REPORT]), st.sampled_from([None, math.nan, 0.5, 2.5, 40.0]))


# ---------------------------------------------------------------- the lean decide equals the reference
@settings(max_examples=300, deadline=None)
@given(random_desks(), st.lists(st.tuples(intents, lean_contexts, st.sampled_from(["entry", "exit", "exit+"]),
                                          st.sampled_from([1.0, 1.0, 1 + 1e-7, 1e-5])), min_size=1, max_size=6))
def test_decide_when_lean_then_every_recorded_field_equals_the_eager_decimal_reference(
        d: Desk, steps: list[tuple[tuple[str, str, Side, float], Context, str, float]]) -> None:
    """Entries and exits on a random book, each committed when approved (so the next sees it): the verdict the lean
    decide answers is recorded byte for byte as the reference's, and the qty sent is the same Decimal."""
    reference = PreTrade(d.cfg, DEPS, PAIRS, d.pretrade.fee_rate, 10_000.0)
    reference.rebuild(d.ledger, d.prices, T0)
    d.pretrade.mark(d.prices)  # both books recomputed from the same ledger, holds and prices: the same floats
    assert _figures(reference.view()) == _figures(d.pretrade.view())
    for i, ((dep, pair, side, drift), ctx, kind, scale) in enumerate(steps):
        # Arrange
        price = f"{d.prices[pair] * drift * scale:.8f}"
        held = d.pretrade.position(dep, pair)
        if kind == "entry" or held == 0:
            intent = entry(pair, price, side, dep, T0 + i)
        else:
            qty = abs(held) * (1.0 if kind == "exit" else 1.5)
            intent = exit_(f"{qty:.12f}", pair, Side.SELL if held > 0 else Side.BUY, dep, T0 + i, price=price)

        # Act
        lean = d.pretrade.decide(intent, ctx)
        eager = reference_decide(reference, intent, ctx)

        # Assert
        assert (lean.approved, lean.rule, lean.qty) == (eager.approved, eager.rule, eager.qty)
        assert _record(lean) == _record(eager)
        event(f"{'entry' if not intent.reduce_only else 'exit'}: {lean.rule}")
        if lean.approved:
            d.pretrade.commit(f"c{i}", intent, lean)
            reference.commit(f"c{i}", intent, eager)


def test_decide_when_every_sizing_method_then_recorded_as_the_reference() -> None:
    # Arrange: a book with room, the three methods (and Kelly without its report, volatility without an ATR)
    cases = [(None, None, None), (SIZINGS[1], None, None), (SIZINGS[3], REPORT, None), (SIZINGS[3], None, None),
             (SIZINGS[4], None, 2.5), (SIZINGS[4], None, math.nan)]
    for sizing, report, atr in cases:
        d = desk().start()
        reference = desk().start().pretrade
        ctx = replace(CTX, sizing=sizing, validation=report, atr=atr, size_multiplier=0.5)

        # Act
        lean, eager = d.pretrade.decide(entry(), ctx), reference_decide(reference, entry(), ctx)

        # Assert
        assert _record(lean) == _record(eager), sizing
        assert lean == eager


# ---------------------------------------------------------------- the verdict's words, deferred
def test_verdict_when_decided_then_words_are_those_of_the_moment_of_the_decision() -> None:
    # Arrange: an entry decided, then committed (the book's free cash and exposure move) before it is recorded
    d = desk().start()
    verdict = d.pretrade.decide(entry(), CTX)
    d.pretrade.commit("e1", entry(), verdict)

    # Act
    numbers = verdict.numbers

    # Assert: the numbers read at the decision (nothing held yet), not the book's after the commit
    assert (numbers["free_cash"], numbers["gross_exposure"], numbers["notional"]) == ("10000.00", "0.00", "2000.00")
    assert d.pretrade.view().cash < 10_000.0
    assert verdict.reason == "within limits"


def test_verdict_when_replaced_then_words_kept_and_qty_changed() -> None:
    # Arrange
    verdict = desk().start().pretrade.decide(entry(), CTX)

    # Act: what the loop does when a venue's amount step rounds the qty
    stepped = replace(verdict, qty=D("19.5"))
    denied = replace(verdict, approved=False, rule="venue_step", qty=D(0), reason="below one amount step")

    # Assert
    assert (stepped.qty, stepped.numbers, stepped.sizing, stepped.reason) == (
        D("19.5"), verdict.numbers, verdict.sizing, "within limits")
    assert (denied.approved, denied.rule, denied.reason, denied.numbers) == (
        False, "venue_step", "below one amount step", verdict.numbers)


def test_verdict_when_built_by_its_constructor_then_plain_fields() -> None:
    # Act
    verdict = Verdict(True, "approved", "test", D(3))

    # Assert
    assert (verdict.reason, verdict.numbers, verdict.sizing) == ("test", {}, None)
    assert verdict.as_dict() == {"approved": True, "rule": "approved", "reason": "test", "qty": "3", "numbers": {}}


def test_verdict_when_exit_denied_then_reason_and_numbers_from_the_denial() -> None:
    # Arrange
    d = desk()
    d.hold("dep-1", "BTC/USDT", Side.BUY, "5")
    d.start()

    # Act
    verdict = d.pretrade.decide(exit_("6"), CTX)

    # Assert
    assert (verdict.approved, verdict.rule, verdict.qty) == (False, "reduce_only", 0)
    assert verdict.reason == "reduce_only: exit exceeds the position (6 vs limit 5)"
    assert verdict.numbers == {"value": "6.0", "limit": "5.0"}
    assert verdict.sizing is None


# ---------------------------------------------------------------- the book kept incrementally
def test_commit_when_many_entries_then_view_equals_the_book_recomputed() -> None:
    # Arrange: a book kept incrementally through many commits on few lanes (a lane committed again and again)
    cfg = PROP_CFG.model_copy(update={"throttle_count": 1_000, "max_position_fraction": 0.01})
    d = desk(cfg, capital="1000000")
    d.hold("dep-2", "SOL/USDT", Side.SELL, "10")
    d.start()
    ctx = replace(CTX, portfolio_equity=1_000_000.0, deployment_equity=1_000_000.0)
    sent = 0
    for i in range(60):
        pair, side = PAIRS[i % 3], Side.BUY if i % 2 else Side.SELL
        intent = entry(pair, "100", side, DEPS[i % 2], T0 + i)
        verdict = d.pretrade.decide(intent, ctx)
        if verdict.approved:
            d.pretrade.commit(f"e{i}", intent, verdict)
            sent += 1
    kept = d.pretrade.view()
    figures = (kept.gross, list(kept.dep_exposure), kept.open_positions, kept.cash, list(kept.pos_qty))

    # Act: the same book recomputed from the positions, the holds and the prices
    d.pretrade.mark(d.prices)
    again = d.pretrade.view()

    # Assert: the same positions, count and cash (the same operations in the same order); exposure summed
    # in another order, to float rounding
    assert sent > 30
    assert (figures[2], figures[3], figures[4]) == (again.open_positions, again.cash, again.pos_qty)
    assert math.isclose(figures[0], again.gross, rel_tol=1e-12)
    assert all(math.isclose(x, y, rel_tol=1e-12, abs_tol=1e-9)
               for x, y in zip(figures[1], again.dep_exposure, strict=True))
