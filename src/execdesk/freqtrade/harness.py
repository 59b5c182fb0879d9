"""Freqtrade, driven in a subprocess: load a generated strategy, or backtest it offline.

Run ONLY as ``python -m execdesk.freqtrade.harness <command> <json-args>`` (``<json-args>`` is a
JSON object, or ``@path`` of a file holding one). It imports Freqtrade (~2 s, ~280 MB), so nothing
in the desk may import it: :mod:`execdesk.freqtrade.runner` is the Python-side wrapper.

Output: exactly one JSON object on stdout (everything Freqtrade prints goes to stderr)::

    {"ok": true, "command": ..., ...results..., "timings": {...}, "network": {...}}
    {"ok": false, "command": ..., "error": {"kind": ..., "message": ...}, "timings": ..., "network": ...}

Exit code 0 on success, 1 on a reported error, 2 on bad usage.

Commands:

``load`` — ``{"strategy_file", "class_name", "user_data_dir", "config"?, "pairs"?, "smoke_candles"?}``.
    Parses the file with :mod:`ast` first (a SyntaxError is reported with its line), checks the
    literal ``class <Name>(`` Freqtrade searches for, then ``StrategyResolver.load_strategy``
    with the ``freqtrade.resolvers`` logger captured, so an ImportError/NameError inside the file is
    reported with its real cause instead of "Impossible to load Strategy". Reports the attributes
    Freqtrade sees. With ``smoke_candles`` > 0 it also runs ``advise_all_indicators`` and
    ``ft_advise_signals`` (Freqtrade's own dataframe checks) over a seeded random walk per pair.

``backtest`` — ``{"config_file", "strategy", "strategy_path", "user_data_dir", "datadir", "signals"?,
    "min_cost"?}``. Offline exchange seam (see /work/shared/FREQTRADE_OFFLINE.md): the exchange
    class named in the config is subclassed, ``_init_ccxt`` calls ``super()`` and then replaces the
    ccxt object's public fetch methods (``fetch_markets``, ``fetch_currencies``, ``fetch_time``,
    ``fetch_ohlcv``, ``fetch_ticker``, ``fetch_tickers``, ``fetch_bids_asks``, ``fetch_order_book``)
    with offline ones serving a spot market per whitelisted pair (precision 1e-8, minimal cost
    ``min_cost``); everything else in Freqtrade (market reload, config validation, precision, stake
    limits, fees) runs unchanged. Then ``setup_optimize_configuration`` (``datadir`` passed in the
    args, ``backtest_cache`` none), ``Backtesting(config, exchange=...)``, ``load_bt_data``,
    ``backtest_one_strategy``, ``Backtesting.cleanup``. Reports every trade, the effective backtest
    window and, with ``signals``, the dates of every signal Freqtrade's populate methods produced.

``network_probe`` — tries one DNS lookup and one TCP connect and reports the guard's verdicts
    (a self-test of the guard below; imports no Freqtrade).

Network: an audit hook (``sys.addaudithook``) refuses every DNS lookup and every INET socket
``connect``/``sendto`` and reports each attempt under ``network`` — a run that needed the network
fails loudly instead of waiting on it.
"""

from __future__ import annotations

import ast
import json
import logging
import os
import socket
import sys
import time
import traceback
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TextIO

PROTOCOL = 1
_OFFLINE_FETCHES = (
    "fetch_markets",
    "fetch_currencies",
    "fetch_time",
    "fetch_ohlcv",
    "fetch_ticker",
    "fetch_tickers",
    "fetch_bids_asks",
    "fetch_order_book",
)
_SIGNAL_COLUMNS = ("enter_long", "exit_long", "enter_short", "exit_short")


class HarnessError(Exception):
    """A reported failure: ``kind`` classifies it for the caller, the message explains it."""

    def __init__(self, kind: str, message: str, **detail: object) -> None:
        super().__init__(message)
        self.kind = kind
        self.detail = detail


# -- network guard -----------------------------------------------------------------------------


class NetworkGuard:
    """Audit hook: records and refuses DNS lookups and INET connections."""

    _LOOKUPS = frozenset(
        {"socket.getaddrinfo", "socket.gethostbyname", "socket.gethostbyname_ex", "socket.gethostbyaddr"}
    )
    _SENDS = frozenset({"socket.connect", "socket.sendto", "socket.sendmsg"})

    def __init__(self) -> None:
        self.attempts: list[str] = []

    def hook(self, event: str, args: tuple[Any, ...]) -> None:
        """The audit hook (installed with ``sys.addaudithook``)."""
        if event in self._LOOKUPS:
            self._refuse(f"{event} {args[0]!r}")
        elif event in self._SENDS:
            sock = args[0]
            family = getattr(sock, "family", None)
            if family in (socket.AF_INET, socket.AF_INET6):
                self._refuse(f"{event} {args[1]!r}")

    def _refuse(self, what: str) -> None:
        self.attempts.append(what)
        raise PermissionError(f"execdesk ft_harness runs offline: refused {what}")

    def report(self) -> dict[str, object]:
        """JSON-safe summary."""
        return {"connection_attempts": len(self.attempts), "attempts": self.attempts[:20]}


class _LogCapture(logging.Handler):
    def __init__(self) -> None:
        super().__init__(level=logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


# -- offline exchange ----------------------------------------------------------------------------


def market_for(pair: str, fee: float, min_cost: float) -> dict[str, Any]:
    """A ccxt market structure for ``pair`` (spot, or linear swap for ``BASE/QUOTE:SETTLE``)."""
    base, rest = pair.split("/")
    quote, _, settle = rest.partition(":")
    swap = bool(settle)
    return {
        "id": f"{base}{quote}",
        "lowercaseId": None,
        "symbol": pair,
        "base": base,
        "quote": quote,
        "settle": settle or None,
        "baseId": base,
        "quoteId": quote,
        "settleId": settle or None,
        "type": "swap" if swap else "spot",
        "spot": not swap,
        "margin": False,
        "swap": swap,
        "future": False,
        "option": False,
        "index": None,
        "active": True,
        "contract": swap,
        "linear": True if swap else None,
        "inverse": False if swap else None,
        "subType": "linear" if swap else None,
        "taker": fee,
        "maker": fee,
        "contractSize": 1.0 if swap else None,
        "expiry": None,
        "expiryDatetime": None,
        "strike": None,
        "optionType": None,
        "precision": {"amount": 1e-8, "price": 1e-8, "cost": None, "base": None, "quote": None},
        "limits": {
            "leverage": {"min": 1.0, "max": 20.0 if swap else None},
            "amount": {"min": 1e-8, "max": None},
            "price": {"min": 1e-8, "max": None},
            "cost": {"min": min_cost, "max": None},
            "market": {"min": None, "max": None},
        },
        "marginModes": {"cross": False, "isolated": swap},
        "created": None,
        "info": {},
    }


def currencies_for(markets: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    codes = sorted({m[k] for m in markets.values() for k in ("base", "quote", "settle") if m[k]})
    return {
        code: {
            "id": code,
            "numericId": None,
            "code": code,
            "precision": 1e-8,
            "name": code,
            "active": True,
            "deposit": True,
            "withdraw": True,
            "fee": None,
            "fees": {},
            "networks": {},
            "limits": {"amount": {"min": None, "max": None}, "withdraw": {"min": None, "max": None}},
            "type": "crypto",
            "info": {},
        }
        for code in codes
    }


def _offline_methods(markets: dict[str, dict[str, Any]], sync: bool) -> dict[str, Callable[..., Any]]:
    """Replacements for the ccxt fetch methods: markets are served, market data is refused."""
    currencies = currencies_for(markets)

    def no_data(what: str) -> Callable[..., Any]:
        def refuse(*args: Any, **kwargs: Any) -> Any:
            raise PermissionError(f"execdesk ft_harness runs offline: no live {what} ({args[:1]!r})")

        return refuse

    values: dict[str, Callable[..., Any]] = {
        "fetch_markets": lambda *a, **k: [dict(m) for m in markets.values()],
        "fetch_currencies": lambda *a, **k: dict(currencies),
        "fetch_time": lambda *a, **k: int(time.time() * 1000),
        "fetch_ohlcv": no_data("candles"),
        "fetch_ticker": no_data("ticker"),
        "fetch_tickers": no_data("tickers"),
        "fetch_bids_asks": no_data("bids/asks"),
        "fetch_order_book": no_data("order book"),
    }
    return values if sync else as_async(values)


def as_async(methods: dict[str, Callable[..., Any]]) -> dict[str, Callable[..., Any]]:
    """The same methods as coroutines (for ccxt's async exchange objects)."""

    def wrap(fn: Callable[..., Any]) -> Callable[..., Any]:
        async def wrapper(*args: Any, **kwargs: Any) -> Any:
            return fn(*args, **kwargs)

        return wrapper

    return {name: wrap(fn) for name, fn in methods.items()}


def offline_exchange(config: dict[str, Any], min_cost: float) -> Any:
    """The configured exchange class, subclassed so its ccxt objects never reach the network."""
    fee = float(config.get("fee") or 0.001)
    pairs = list(config["exchange"]["pair_whitelist"])
    markets = {pair: market_for(pair, fee, min_cost) for pair in pairs}
    name = str(config["exchange"]["name"]).title().replace("_", "")
    base_class = exchange_class(config["exchange"]["name"])

    def _init_ccxt(self: Any, exchange_config: dict[str, Any], sync: bool, ccxt_kwargs: dict[str, Any]) -> Any:
        api = base_class._init_ccxt(self, exchange_config, sync, ccxt_kwargs)
        for method, replacement in _offline_methods(markets, sync).items():
            setattr(api, method, replacement)
        return api

    offline = type(f"Offline{name}", (base_class,), {"_init_ccxt": _init_ccxt})
    return offline(config, validate=True, load_leverage_tiers=False)


def exchange_class(name: str) -> Any:
    import freqtrade.exchange as exchanges  # type: ignore[import-untyped]

    wanted = name.lower().replace("_", "")
    for attr in dir(exchanges):
        candidate = getattr(exchanges, attr)
        if isinstance(candidate, type) and attr.lower() == wanted:
            return candidate
    return exchanges.Exchange  # ccxt-generic exchanges run on the base class in Freqtrade too


# -- commands -----------------------------------------------------------------------------------


def _check_source(path: Path, class_name: str) -> None:
    try:
        source = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise HarnessError("read", f"cannot read strategy file {path}: {exc}") from None
    try:
        ast.parse(source, filename=str(path))
    except SyntaxError as exc:
        text = (exc.text or "").strip()
        raise HarnessError(
            "syntax",
            f"{path.name}, line {exc.lineno}: SyntaxError: {exc.msg}" + (f" ({text!r})" if text else ""),
            line=exc.lineno,
            offset=exc.offset,
        ) from None
    if f"class {class_name}(" not in source:
        raise HarnessError("not_found", f"{path.name} has no 'class {class_name}(' (Freqtrade finds classes by it)")


def _strategy_attributes(strategy: Any) -> dict[str, Any]:
    names = (
        "INTERFACE_VERSION",
        "timeframe",
        "stoploss",
        "trailing_stop",
        "trailing_stop_positive",
        "trailing_stop_positive_offset",
        "trailing_only_offset_is_reached",
        "startup_candle_count",
        "can_short",
        "process_only_new_candles",
        "use_exit_signal",
    )
    attrs: dict[str, Any] = {name: getattr(strategy, name, None) for name in names}
    attrs["minimal_roi"] = {str(k): v for k, v in dict(getattr(strategy, "minimal_roi", {}) or {}).items()}
    if "order_types" in type(strategy).__dict__:  # the strategy's own (else Freqtrade's defaults: not reported)
        attrs["order_types"] = dict(strategy.order_types)
    from freqtrade.strategy import IStrategy  # type: ignore[import-untyped]

    attrs["custom_stake_amount"] = type(strategy).custom_stake_amount is not IStrategy.custom_stake_amount
    return attrs


def _random_walk(count: int, timeframe: str, seed: int) -> Any:
    import numpy as np
    import pandas as pd
    from freqtrade.exchange import timeframe_to_seconds

    rng = np.random.default_rng(seed)
    steps = rng.normal(0.0, 0.01, count)
    close = 100.0 * np.exp(np.cumsum(steps))
    open_ = np.concatenate(([100.0], close[:-1]))
    spread = np.abs(rng.normal(0.0, 0.004, count)) * close
    seconds = timeframe_to_seconds(timeframe)
    dates = pd.date_range("2024-01-01", periods=count, freq=f"{seconds}s", tz="UTC")
    return pd.DataFrame(
        {
            "date": dates,
            "open": open_,
            "high": np.maximum(open_, close) + spread,
            "low": np.minimum(open_, close) - spread,
            "close": close,
            "volume": rng.uniform(10.0, 1000.0, count),
        }
    )


def cmd_load(args: Mapping[str, Any], timings: dict[str, float]) -> dict[str, Any]:
    """``load``: see the module docstring."""
    path = Path(str(args["strategy_file"])).resolve()
    class_name = str(args["class_name"])
    _check_source(path, class_name)
    start = time.perf_counter()
    from freqtrade.exceptions import OperationalException  # type: ignore[import-untyped]
    from freqtrade.resolvers import StrategyResolver  # type: ignore[import-untyped]

    timings["import_s"] = time.perf_counter() - start
    user_data = Path(str(args["user_data_dir"])).resolve()
    user_data.mkdir(parents=True, exist_ok=True)
    config: dict[str, Any] = {
        "strategy": class_name,
        "strategy_path": str(path.parent),
        "user_data_dir": user_data,
        "dry_run": True,
        "stake_currency": "USDT",
        "exchange": {"name": "binance", "pair_whitelist": []},
        "trading_mode": "spot",
        "margin_mode": "",
    }
    config.update(dict(args.get("config") or {}))
    config["user_data_dir"] = user_data
    capture = _LogCapture()
    resolver_logger = logging.getLogger("freqtrade.resolvers")
    resolver_logger.addHandler(capture)
    start = time.perf_counter()
    try:
        strategy = StrategyResolver.load_strategy(config)
    except OperationalException as exc:
        causes = [m for m in capture.messages if "Could not import" in m] or capture.messages
        reason = "; ".join(causes) if causes else str(exc)
        message = f"Freqtrade could not load {class_name}: {reason}"
        raise HarnessError("load", message, freqtrade_message=str(exc)) from None
    finally:
        resolver_logger.removeHandler(capture)
    timings["load_s"] = time.perf_counter() - start
    result: dict[str, Any] = {"class_name": type(strategy).__name__, "attributes": _strategy_attributes(strategy)}
    count = int(args.get("smoke_candles") or 0)
    if count > 0:
        start = time.perf_counter()
        pairs = list(args.get("pairs") or ["BTC/USDT"])
        smoke: dict[str, Any] = {}
        for i, pair in enumerate(pairs):
            frame = _random_walk(count, strategy.timeframe, seed=i)
            analyzed = strategy.advise_all_indicators({pair: frame})[pair]
            signals = strategy.ft_advise_signals(analyzed, {"pair": pair})
            smoke[pair] = {
                "candles": len(signals),
                **{c: int((signals[c] == 1).sum()) for c in _SIGNAL_COLUMNS if c in signals.columns},
            }
        timings["smoke_s"] = time.perf_counter() - start
        result["smoke"] = smoke
    return result


def _iso(value: Any) -> str:
    return str(value.isoformat())


def cmd_backtest(args: Mapping[str, Any], timings: dict[str, float]) -> dict[str, Any]:
    """``backtest``: see the module docstring."""
    start = time.perf_counter()
    from freqtrade.commands.optimize_commands import (  # type: ignore[import-untyped]
        setup_optimize_configuration,
    )
    from freqtrade.enums import RunMode  # type: ignore[import-untyped]
    from freqtrade.optimize.backtesting import Backtesting  # type: ignore[import-untyped]

    timings["import_s"] = time.perf_counter() - start
    strategy_path = Path(str(args["strategy_path"])).resolve()
    strategy_name = str(args["strategy"])
    files = sorted(strategy_path.glob("*.py"))
    for file in files:
        if f"class {strategy_name}(" in file.read_text(encoding="utf-8", errors="replace"):
            _check_source(file, strategy_name)
    start = time.perf_counter()
    cli_args = {
        "config": [str(args["config_file"])],
        "strategy": strategy_name,
        "strategy_path": str(strategy_path),
        "user_data_dir": str(args["user_data_dir"]),
        "datadir": str(args["datadir"]),
        "backtest_cache": "none",
        "export": "none",
    }
    config = setup_optimize_configuration(cli_args, RunMode.BACKTEST)
    timings["config_s"] = time.perf_counter() - start
    start = time.perf_counter()
    exchange = offline_exchange(config, float(args.get("min_cost", 0.01)))
    timings["exchange_s"] = time.perf_counter() - start
    start = time.perf_counter()
    capture = _LogCapture()
    resolver_logger = logging.getLogger("freqtrade.resolvers")
    resolver_logger.addHandler(capture)
    try:
        backtesting = Backtesting(config, exchange=exchange)
    except Exception as exc:
        causes = [m for m in capture.messages if "Could not import" in m]
        if causes:
            raise HarnessError("load", f"Freqtrade could not load {strategy_name}: {'; '.join(causes)}") from exc
        raise
    finally:
        resolver_logger.removeHandler(capture)
    timings["setup_s"] = time.perf_counter() - start
    try:
        start = time.perf_counter()
        data, timerange = backtesting.load_bt_data()
        timings["load_data_s"] = time.perf_counter() - start
        strategy = backtesting.strategylist[0]
        start = time.perf_counter()
        min_date, max_date = backtesting.backtest_one_strategy(strategy, data, timerange)
        timings["backtest_s"] = time.perf_counter() - start
        content = backtesting.all_bt_content[strategy.get_strategy_name()]
        trades = _trades(content["results"])
        candles = {
            pair: {"count": len(df), "first": _iso(df["date"].iloc[0]), "last": _iso(df["date"].iloc[-1])}
            for pair, df in data.items()
        }
        result: dict[str, Any] = {
            "strategy": strategy.get_strategy_name(),
            "window": {"start": _iso(min_date), "end": _iso(max_date)},
            "starting_balance": float(backtesting.starting_balance),
            "final_balance": float(content["final_balance"]),
            "fee": float(backtesting.fee),
            "candles": candles,
            "trades": trades,
        }
        if args.get("signals"):
            start = time.perf_counter()
            result["signals"] = _signals(strategy, data)
            timings["signals_s"] = time.perf_counter() - start
        return result
    finally:
        Backtesting.cleanup()


def _trades(results: Any) -> list[dict[str, Any]]:
    trades: list[dict[str, Any]] = []
    for row in results.itertuples(index=False):
        trades.append(
            {
                "pair": str(row.pair),
                "open_date": _iso(row.open_date),
                "close_date": _iso(row.close_date),
                "open_rate": float(row.open_rate),
                "close_rate": float(row.close_rate),
                "amount": float(row.amount),
                "stake_amount": float(row.stake_amount),
                "profit_ratio": float(row.profit_ratio),
                "profit_abs": float(row.profit_abs),
                "exit_reason": str(row.exit_reason),
                "is_short": bool(row.is_short),
                "fee_open": float(row.fee_open),
                "fee_close": float(row.fee_close),
            }
        )
    return trades


def _signals(strategy: Any, data: Mapping[str, Any]) -> dict[str, dict[str, list[int]]]:
    """Epoch-ms open times of every candle each signal column marks, per pair."""
    import pandas as pd

    out: dict[str, dict[str, list[int]]] = {}
    for pair, frame in data.items():
        metadata = {"pair": pair}
        analyzed = strategy.advise_indicators(frame.copy(), metadata)
        signals = strategy.ft_advise_signals(analyzed, metadata)
        epoch_ms = (signals["date"] - pd.Timestamp(0, tz="UTC")) // pd.Timedelta(milliseconds=1)
        out[pair] = {
            column: [int(v) for v in epoch_ms[signals[column] == 1]]
            for column in _SIGNAL_COLUMNS
            if column in signals.columns
        }
    return out


def cmd_network_probe(args: Mapping[str, Any], timings: dict[str, float]) -> dict[str, Any]:
    """``network_probe``: try a DNS lookup and a TCP connect (to ``host``/``port``, default
    example.com:443 and 127.0.0.1:9) and report what the guard did; imports no Freqtrade."""
    outcomes: dict[str, str] = {}
    host = str(args.get("host", "example.com"))
    try:
        socket.getaddrinfo(host, 443)
        outcomes["getaddrinfo"] = "resolved"
    except OSError as exc:
        outcomes["getaddrinfo"] = f"{type(exc).__name__}: {exc}"
    address = (str(args.get("connect_host", "127.0.0.1")), int(args.get("connect_port", 9)))
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.settimeout(2)
        sock.connect(address)
        outcomes["connect"] = "connected"
    except OSError as exc:
        outcomes["connect"] = f"{type(exc).__name__}: {exc}"
    finally:
        sock.close()
    return {"outcomes": outcomes}


COMMANDS: dict[str, Callable[[Mapping[str, Any], dict[str, float]], dict[str, Any]]] = {
    "load": cmd_load,
    "backtest": cmd_backtest,
    "network_probe": cmd_network_probe,
}


# -- entry point -------------------------------------------------------------------------------


def _claim_stdout() -> TextIO:
    """Keep the real stdout for the JSON result; everything else printed goes to stderr."""
    sys.stdout.flush()
    real = os.dup(1)
    os.dup2(2, 1)
    return os.fdopen(real, "w", encoding="utf-8")


def _parse_args(argv: list[str]) -> tuple[str, dict[str, Any]]:
    if len(argv) != 2:
        raise HarnessError("usage", "usage: python -m execdesk.freqtrade.harness <load|backtest> <json-args|@file>")
    command, raw = argv
    if command not in COMMANDS:
        raise HarnessError("usage", f"unknown command {command!r}; expected one of {', '.join(COMMANDS)}")
    try:
        text = Path(raw[1:]).read_text(encoding="utf-8") if raw.startswith("@") else raw
        args = json.loads(text)
    except (OSError, ValueError) as exc:
        raise HarnessError("usage", f"arguments must be a JSON object: {exc}") from None
    if not isinstance(args, dict):
        raise HarnessError("usage", "arguments must be a JSON object")
    return command, args


def main(argv: list[str] | None = None) -> int:
    """Run one command and print its JSON result; returns the exit code."""
    started = time.perf_counter()
    out = _claim_stdout()
    guard = NetworkGuard()
    sys.addaudithook(guard.hook)
    timings: dict[str, float] = {}
    command = ""
    code = 0
    payload: dict[str, Any]
    try:
        command, args = _parse_args(sys.argv[1:] if argv is None else argv)
        payload = {"ok": True, "command": command, **COMMANDS[command](args, timings)}
    except HarnessError as exc:
        code = 2 if exc.kind == "usage" else 1
        payload = {"ok": False, "command": command, "error": {"kind": exc.kind, "message": str(exc), **exc.detail}}
    except ModuleNotFoundError as exc:
        code = 1
        kind = "unavailable" if (exc.name or "").split(".")[0] == "freqtrade" else "freqtrade"
        payload = {"ok": False, "command": command, "error": {"kind": kind, "message": f"{type(exc).__name__}: {exc}"}}
    except Exception as exc:  # anything Freqtrade raises is reported, with where it came from
        code = 1
        payload = {
            "ok": False,
            "command": command,
            "error": {
                "kind": "freqtrade",
                "message": f"{type(exc).__name__}: {exc}",
                "traceback": traceback.format_exc(limit=8),
            },
        }
    timings["total_s"] = time.perf_counter() - started
    payload["timings"] = {k: round(v, 4) for k, v in timings.items()}
    payload["network"] = guard.report()
    payload["protocol"] = PROTOCOL
    try:
        from importlib.metadata import version

        payload["freqtrade_version"] = version("freqtrade")
    except Exception:
        payload["freqtrade_version"] = None
    out.write(json.dumps(payload, default=str) + "\n")
    out.flush()
    return code


if __name__ == "__main__":
    sys.exit(main())
