"""A dry-run ``freqtrade trade`` bot, run offline on replayed candles (subprocess side).

Run ONLY as ``python -m execdesk.freqtrade.bot_harness @<args.json>`` — by
:class:`execdesk.freqtrade.bot.FreqtradeBot`, which supervises it. It imports Freqtrade
(~2 s, ~280 MB), so nothing in the desk may import this module.

``<args.json>`` holds (paths only — the API credentials stay in the bot's ``config.json``)::

    {"config_file", "user_data_dir", "strategy", "db_url", "datadir", "timeframe", "pairs",
     "history_candles"?, "min_cost"?, "fee"?, "data_format"?}

What it does, in this process:

1. installs a network guard (``sys.addaudithook``) that refuses every DNS lookup and INET
   ``connect``/``sendto`` to anything but loopback, and logs each refusal to stderr as
   ``execdesk offline guard refused ...``;
2. reads the candles of every pair (``<datadir>/<BASE>_<QUOTE>-<tf>.<fmt>``, via
   :func:`execdesk.data.load_pair`) and re-dates them so that candle number ``history_candles``
   (default: half the file) opens at the current ``timeframe`` boundary of the wall clock; later
   candles are revealed as the wall clock reaches them, and after the last one the feed stands
   still (Freqtrade then reports stale data);
3. applies the offline seam of ``/work/shared/FREQTRADE_OFFLINE.md``: the exchange class named in
   the config is subclassed and its ``_init_ccxt`` replaces, on each ccxt object it builds,
   ``fetch_markets`` / ``fetch_currencies`` (one spot market per pair, as
   :func:`execdesk.freqtrade.harness.market_for` builds it), ``fetch_time`` (wall clock),
   ``fetch_ohlcv`` (revealed candles), ``fetch_ticker`` / ``fetch_tickers`` / ``fetch_bids_asks``
   (last price interpolated between the current candle's open and close by the whole minutes
   elapsed in it; bid/ask 5 bps either side) and ``fetch_order_book`` (20 deep levels around bid and ask).
   ``ExchangeResolver.load_exchange`` is pointed at that subclass;
4. runs Freqtrade's own ``main(["trade", ...])``: config validation, strategy loading, dry-run
   fills, wallets, persistence and the REST API all run unchanged.

Exit code: Freqtrade's (0 after a clean stop, 2 for a Freqtrade error such as a strategy that does
not load), or 2 for unusable arguments.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from execdesk.freqtrade.harness import NetworkGuard, as_async, currencies_for, exchange_class, market_for

logger = logging.getLogger("execdesk.ft_bot_harness")

_SPREAD = 0.0005  # half-spread of the derived ticker and order book (5 bps)
_BOOK_LEVELS = 20
_DIGITS = 8  # price precision of the served markets (harness.market_for: 1e-8)
_PRICE_STEP_MS = 60_000  # the derived last price moves once a minute
_BOOK_NOTIONAL = 1e7  # quote-currency depth of each level: deep enough that dry-run fills are at the top


# -- network guard -------------------------------------------------------------------------------


class LoopbackGuard(NetworkGuard):
    """The codegen harness's guard, letting loopback through (the bot's own REST API lives there).

    A refusal is also written to stderr (the bot's log file), because inside the bot it surfaces
    only as an exception caught somewhere in Freqtrade.
    """

    _LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1", "", None})

    def hook(self, event: str, args: tuple[Any, ...]) -> None:
        if event in self._LOOKUPS and args and args[0] in self._LOOPBACK_NAMES:
            return
        if event in self._SENDS and len(args) > 1 and _is_loopback(args[1]):
            return
        super().hook(event, args)

    def _refuse(self, what: str) -> None:
        sys.stderr.write(f"execdesk offline guard refused {what}\n")
        super()._refuse(what)


def _is_loopback(address: Any) -> bool:
    if not isinstance(address, tuple) or not address:
        return False
    host = str(address[0])
    return host.startswith("127.") or host in ("::1", "localhost")


# -- replay feed ---------------------------------------------------------------------------------


class ReplayFeed:
    """Candles of each pair, re-dated so that candle ``history`` opens at the clock's current
    timeframe boundary; a candle is revealed once the clock reaches its open time.

    ``frames``: pair -> candle frame (``date`` UTC, OHLCV); every pair uses the first pair's offset,
    so pairs sharing a date grid stay aligned. ``clock`` returns epoch seconds (float).
    """

    def __init__(
        self,
        frames: Mapping[str, Any],
        timeframe: str,
        timeframe_seconds: int,
        history: int | None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not frames:
            raise ValueError("no candles: the replay feed needs at least one pair")
        self.timeframe = timeframe
        self.step_ms = timeframe_seconds * 1000
        self.clock = clock
        first = next(iter(frames.values()))
        count = len(first)
        anchor_index = count // 2 if history is None else min(max(int(history), 1), count - 1)
        now_ms = int(clock() * 1000)
        boundary = now_ms - now_ms % self.step_ms
        import pandas as pd

        epoch, one_ms = pd.Timestamp(0, tz="UTC"), pd.Timedelta(milliseconds=1)
        first_ms = int((first["date"].iloc[anchor_index] - epoch) // one_ms)
        self.offset_ms = boundary - first_ms
        self.rows: dict[str, list[list[float]]] = {}
        for pair, frame in frames.items():
            stamps = (frame["date"] - epoch) // one_ms + self.offset_ms  # re-dated epoch ms
            values = frame[["open", "high", "low", "close", "volume"]].to_numpy(dtype=float)
            self.rows[pair] = [[int(t), *map(float, v)] for t, v in zip(stamps.tolist(), values, strict=True)]

    def _revealed(self, pair: str) -> list[list[float]]:
        rows = self.rows.get(pair)
        if rows is None:
            raise KeyError(f"no replay candles for {pair}")
        now_ms = int(self.clock() * 1000)
        lo, hi = 0, len(rows)
        while lo < hi:  # first row opening after now
            mid = (lo + hi) // 2
            if rows[mid][0] <= now_ms:
                lo = mid + 1
            else:
                hi = mid
        return rows[:lo]

    def ohlcv(self, pair: str, timeframe: str, since: int | None, limit: int | None) -> list[list[float]]:
        """ccxt ``fetch_ohlcv`` semantics: from ``since`` forward (or the last ``limit``), the
        current (incomplete) candle included — Freqtrade drops it itself."""
        if timeframe != self.timeframe:
            return []  # only the strategy's timeframe is replayed
        rows = self._revealed(pair)
        if since is not None:
            rows = [r for r in rows if r[0] >= since]
            return [list(r) for r in (rows[:limit] if limit else rows)]
        return [list(r) for r in (rows[-limit:] if limit else rows)]

    def last_price(self, pair: str) -> float:
        """Open of the current candle moved toward its close by the fraction of it elapsed, in
        whole minutes: the price holds for a minute, so a ticker and an order book read together
        agree (a dry-run limit order at the ticker's ask then crosses the book's ask)."""
        rows = self._revealed(pair)
        if not rows:
            return float(self.rows[pair][0][1])
        start, open_, _high, _low, close, _volume = rows[-1]
        now_ms = int(self.clock() * 1000)
        elapsed = (now_ms - now_ms % _PRICE_STEP_MS - start) / self.step_ms
        fraction = min(max(elapsed, 0.0), 1.0)
        return round(float(open_ + (close - open_) * fraction), _DIGITS)

    def ticker(self, pair: str) -> dict[str, Any]:
        """A ccxt ticker around :meth:`last_price` (bid/ask 5 bps either side)."""
        last = self.last_price(pair)
        rows = self._revealed(pair)
        candle = rows[-1] if rows else self.rows[pair][0]
        now_ms = int(self.clock() * 1000)
        return {
            "symbol": pair,
            "timestamp": now_ms,
            "datetime": None,
            "high": candle[2],
            "low": candle[3],
            "bid": _level(last, -1),
            "bidVolume": _BOOK_NOTIONAL / last,
            "ask": _level(last, 1),
            "askVolume": _BOOK_NOTIONAL / last,
            "vwap": None,
            "open": candle[1],
            "close": last,
            "last": last,
            "previousClose": None,
            "change": None,
            "percentage": None,
            "average": None,
            "baseVolume": candle[5],
            "quoteVolume": candle[5] * last,
            "info": {},
        }

    def order_book(self, pair: str, limit: int | None) -> dict[str, Any]:
        """A ccxt order book: ``limit`` (default 20) levels each side, 5 bps apart."""
        last = self.last_price(pair)
        levels = min(limit or _BOOK_LEVELS, 100)
        amount = _BOOK_NOTIONAL / last
        return {
            "symbol": pair,
            "bids": [[_level(last, -(i + 1)), amount] for i in range(levels)],  # top = the ticker's bid
            "asks": [[_level(last, i + 1), amount] for i in range(levels)],  # top = the ticker's ask
            "timestamp": int(self.clock() * 1000),
            "datetime": None,
            "nonce": None,
        }


def _level(last: float, steps: int) -> float:
    """``steps`` half-spreads above (below, if negative) ``last``, on the markets' 1e-8 price grid
    (Freqtrade rounds a limit price to that grid; an off-grid ask would then never be crossed)."""
    return round(last * (1 + _SPREAD * steps), _DIGITS)


def replay_methods(
    feed: ReplayFeed, markets: dict[str, dict[str, Any]], sync: bool
) -> dict[str, Callable[..., Any]]:
    """Replacements for the ccxt public fetch methods, served by ``feed`` (async when not ``sync``)."""
    currencies = currencies_for(markets)

    def fetch_ohlcv(
        symbol: str, timeframe: str = "1m", since: int | None = None, limit: int | None = None, params: Any = None
    ) -> list[list[float]]:
        return feed.ohlcv(symbol, timeframe, since, limit)

    def fetch_tickers(symbols: Sequence[str] | None = None, params: Any = None) -> dict[str, Any]:
        return {pair: feed.ticker(pair) for pair in (symbols or markets) if pair in markets}

    values: dict[str, Callable[..., Any]] = {
        "fetch_markets": lambda *a, **k: [dict(m) for m in markets.values()],
        "fetch_currencies": lambda *a, **k: dict(currencies),
        "fetch_time": lambda *a, **k: int(feed.clock() * 1000),
        "fetch_ohlcv": fetch_ohlcv,
        "fetch_ticker": lambda symbol, *a, **k: feed.ticker(symbol),
        "fetch_tickers": fetch_tickers,
        "fetch_bids_asks": fetch_tickers,
        "fetch_order_book": lambda symbol, limit=None, *a, **k: feed.order_book(symbol, limit),
    }
    return values if sync else as_async(values)


def install_offline_exchange(
    feed: ReplayFeed, pairs: Sequence[str], fee: float, min_cost: float
) -> Callable[[str], type]:
    """Point ``ExchangeResolver.load_exchange`` at an offline subclass of the configured exchange;
    returns the function that builds (once per exchange name) that subclass."""
    from freqtrade.resolvers import ExchangeResolver  # type: ignore[import-untyped]

    markets = {pair: market_for(pair, fee, min_cost) for pair in pairs}
    built: dict[str, type] = {}

    def offline_class(name: str) -> type:
        if name not in built:
            base_class = exchange_class(name)

            def _init_ccxt(self: Any, exchange_config: dict[str, Any], sync: bool, ccxt_kwargs: dict[str, Any]) -> Any:
                api = base_class._init_ccxt(self, exchange_config, sync, ccxt_kwargs)
                for method, replacement in replay_methods(feed, markets, sync).items():
                    setattr(api, method, replacement)
                return api

            title = name.title().replace("_", "")
            built[name] = type(f"OfflineReplay{title}", (base_class,), {"_init_ccxt": _init_ccxt})
        return built[name]

    def load_exchange(config: dict[str, Any], **kwargs: Any) -> Any:
        return offline_class(str(config["exchange"]["name"]))(config, **kwargs)

    ExchangeResolver.load_exchange = staticmethod(load_exchange)
    return offline_class


# -- entry point ---------------------------------------------------------------------------------


def _read_args(argv: Sequence[str]) -> dict[str, Any]:
    if len(argv) != 1:
        raise ValueError("usage: python -m execdesk.freqtrade.bot_harness @<args.json>")
    raw = argv[0]
    text = Path(raw[1:]).read_text(encoding="utf-8") if raw.startswith("@") else raw
    args = json.loads(text)
    if not isinstance(args, dict):
        raise ValueError("the arguments must be a JSON object")
    missing = [k for k in ("config_file", "user_data_dir", "strategy", "db_url", "datadir", "timeframe", "pairs")
               if k not in args]
    if missing:
        raise ValueError(f"missing arguments: {', '.join(missing)}")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """Run the bot until it is stopped; returns Freqtrade's exit code."""
    guard = LoopbackGuard()
    sys.addaudithook(guard.hook)
    try:
        args = _read_args(sys.argv[1:] if argv is None else argv)
    except (OSError, ValueError) as exc:
        sys.stderr.write(f"execdesk ft_bot_harness: {exc}\n")
        return 2
    from execdesk.data import load_pair, timeframe_to_seconds

    timeframe = str(args["timeframe"])
    pairs = [str(p) for p in args["pairs"]]
    frames = {
        pair: load_pair(Path(args["datadir"]), pair, timeframe, fmt=args.get("data_format") or None)
        for pair in pairs
    }
    feed = ReplayFeed(frames, timeframe, timeframe_to_seconds(timeframe), args.get("history_candles"))
    sys.stderr.write(
        f"execdesk replay feed: {', '.join(pairs)} {timeframe}, re-dated by {feed.offset_ms // 1000} s "
        f"(candle {len(feed._revealed(pairs[0])) - 1} of {len(feed.rows[pairs[0]])} is now)\n"
    )
    install_offline_exchange(feed, pairs, float(args.get("fee") or 0.001), float(args.get("min_cost") or 1.0))
    from freqtrade.main import main as freqtrade_main  # type: ignore[import-untyped]

    trade_args = [
        "trade",
        "--config", str(args["config_file"]),
        "--userdir", str(args["user_data_dir"]),
        "--strategy", str(args["strategy"]),
        "--db-url", str(args["db_url"]),
    ]
    try:
        freqtrade_main(trade_args)
    except SystemExit as exc:
        code = exc.code
        return code if isinstance(code, int) else (0 if code is None else 1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
