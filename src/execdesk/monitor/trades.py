"""Round trips (trades) rebuilt from the ledger's fills, in the columns the backtest metrics take.

A trade opens when a deployment's position in a pair leaves zero and closes when it returns to zero
(a fill that flips the position closes one trade and opens the next). Its ``profit_abs`` is the
realised P&L net of both sides' fees, its ``profit_ratio`` that over the entry notional — the same
definitions :mod:`execdesk.backtest.metrics` uses for the native backtester, so live and backtest
figures are computed by one implementation.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import pandas as pd

from execdesk.domain.state import FillRecord

COLUMNS = ("deployment_id", "pair", "is_short", "open_date", "close_date", "open_rate", "close_rate", "amount",
           "stake_amount", "profit_abs", "profit_ratio", "trade_duration")


@dataclass(slots=True)
class _Open:
    qty: Decimal  # signed
    cost: Decimal  # entry notional of the open quantity
    fees: Decimal
    realized: Decimal
    opened: int
    short: bool
    exit_value: Decimal = Decimal(0)
    exit_qty: Decimal = Decimal(0)
    stake: Decimal = Decimal(0)


class RoundTrips:
    """Round trips built fill by fill: :meth:`add` returns the trades a fill closes (the monitor feeds it
    each fill as it is recorded; :func:`round_trips` feeds it a whole history)."""

    def __init__(self) -> None:
        self.book: dict[tuple[str, str], _Open] = {}

    def add(self, f: FillRecord) -> list[dict[str, object]]:
        rows: list[dict[str, object]] = []
        book = self.book
        key = (f.deployment_id, f.pair)
        signed = f.qty if f.side == "BUY" else -f.qty
        trade = book.get(key)
        if trade is None:
            book[key] = _Open(signed, f.qty * f.price, f.fee, Decimal(0), f.time, signed < 0, stake=f.qty * f.price)
            return rows
        if (trade.qty > 0) == (signed > 0):  # adding to the position
            trade.qty += signed
            trade.cost += f.qty * f.price
            trade.stake += f.qty * f.price
            trade.fees += f.fee
            return rows
        closing = min(abs(signed), abs(trade.qty))
        avg = trade.cost / abs(trade.qty)
        direction = 1 if trade.qty > 0 else -1
        share = closing / f.qty
        trade.realized += closing * (f.price - avg) * direction
        trade.fees += f.fee * share
        trade.exit_value += closing * f.price
        trade.exit_qty += closing
        trade.cost -= avg * closing
        trade.qty += closing * -direction
        if trade.qty == 0:
            rows.append(_row(key, trade, f.time))
            del book[key]
            rest = abs(signed) - closing
            if rest > 0:  # flipped through zero: the rest opens the next trade
                book[key] = _Open(signed / abs(signed) * rest, rest * f.price, f.fee - f.fee * share,
                                  Decimal(0), f.time, signed < 0, stake=rest * f.price)
        return rows

    def hand_over(self, source: str, target: str, pairs: Iterable[str]) -> None:
        """Open trades of ``source`` in ``pairs`` carry on as ``target``'s (a position handed over): the trade
        keeps its entry, so when ``target`` closes it, it is one trade of ``target``."""
        for pair in pairs:
            trade = self.book.pop((source, pair), None)
            if trade is not None:
                self.book[(target, pair)] = trade


#: a hand-over as :func:`round_trips` takes it: (time, from deployment, to deployment, pairs)
HandOver = tuple[int, str, str, list[str]]


def round_trips(fills: Iterable[FillRecord], handovers: Iterable[HandOver] = ()) -> pd.DataFrame:
    """Closed trades of the ``fills`` (in time order; a hand-over before the fills of its time), one row
    each; open positions are left out."""
    builder = RoundTrips()
    rows: list[dict[str, object]] = []
    steps: list[tuple[int, int, str, FillRecord | HandOver]] = [(h[0], 0, "", h) for h in handovers]
    steps.extend((f.time, 1, f.fill_id, f) for f in fills)
    for _t, _order, _id, step in sorted(steps, key=lambda s: s[:3]):
        if isinstance(step, FillRecord):
            rows.extend(builder.add(step))
        else:
            builder.hand_over(step[1], step[2], step[3])
    return frame_of(rows)


def handovers_of(events: Iterable[Any]) -> list[HandOver]:
    """The hand-overs of ``lead.positions_handed_over`` events."""
    return [(e.time, e.payload["from"], e.payload["to"], [p["pair"] for p in e.payload["positions"]])
            for e in events]


def frame_of(rows: list[dict[str, object]]) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=list(COLUMNS))
    for column in ("open_date", "close_date"):
        frame[column] = pd.to_datetime(frame[column], unit="s", utc=True)
    return frame


def _row(key: tuple[str, str], trade: _Open, closed: int) -> dict[str, object]:
    profit = trade.realized - trade.fees
    stake = trade.stake
    return {
        "deployment_id": key[0], "pair": key[1], "is_short": trade.short,
        "open_date": trade.opened, "close_date": closed,
        "open_rate": float(stake / trade.exit_qty) if trade.exit_qty else 0.0,
        "close_rate": float(trade.exit_value / trade.exit_qty) if trade.exit_qty else 0.0,
        "amount": float(trade.exit_qty), "stake_amount": float(stake),
        "profit_abs": float(profit), "profit_ratio": float(profit / stake) if stake else 0.0,
        "trade_duration": (closed - trade.opened) // 60,
    }
