"""The desk's side of the Freqtrade harness: config, temp folders, subprocess, typed results.

This module never imports Freqtrade. It prepares a private work folder per run::

    <work>/config.json                      the Freqtrade config (see build_config)
    <work>/user_data/strategies/<file>.py   a copy of the strategy, alone (Freqtrade imports every
                                            .py file of its strategy folders while searching)
    <work>/data/<BASE>_<QUOTE>-<tf>.feather the candles, written by execdesk.data.datadir.write_pair

and runs ``python -m execdesk.freqtrade.harness <command> <json>`` with a timeout, in that folder,
with ``FREQTRADE__*`` environment variables removed (Freqtrade would merge them into the config).
Failures become typed errors: :class:`FreqtradeUnavailable`, :class:`FreqtradeTimeout`,
:class:`StrategyLoadError` (with Freqtrade's real reason), :class:`FreqtradeRunError`.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Final, Literal

import pandas as pd

import execdesk
from execdesk.data.datadir import write_pair
from execdesk.errors import ExecdeskError, TemporaryError

#: The Freqtrade version the harness and its offline seam were tested with.
TESTED_FREQTRADE_VERSION: Final = "2026.9"
HARNESS_MODULE: Final = "execdesk.freqtrade.harness"
TRADE_COLUMNS: Final = (
    "pair",
    "open_date",
    "close_date",
    "open_rate",
    "close_rate",
    "amount",
    "stake_amount",
    "profit_ratio",
    "profit_abs",
    "exit_reason",
    "is_short",
)


class FreqtradeUnavailable(ExecdeskError):
    """Freqtrade is not installed in the interpreter the desk runs on."""


class FreqtradeTimeout(TemporaryError):
    """The Freqtrade subprocess did not finish in time (it was killed)."""


class StrategyLoadError(ExecdeskError):
    """Freqtrade could not load the strategy; ``kind`` (syntax, load, not_found, read) and the real
    reason (e.g. the SyntaxError with its line, or the ImportError) are in the message."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


class FreqtradeRunError(ExecdeskError):
    """Freqtrade failed while running (config rejected, no data, an exception in the strategy)."""


@dataclass(frozen=True, slots=True)
class FreqtradeSettings:
    """The values of a proof run, and the Freqtrade config keys they set (see :func:`build_config`).

    ``stake_amount`` -> ``stake_amount`` (a number or ``"unlimited"``); ``fee`` -> ``fee`` (ratio
    per side); ``max_open_trades``; ``dry_run_wallet``; ``tradable_balance_ratio``; ``exchange``
    -> ``exchange.name`` (its Freqtrade class runs behind the offline seam); ``data_format`` ->
    ``dataformat_ohlcv``. ``min_cost`` is the minimal order cost of the offline markets and
    ``timeout_s`` the subprocess timeout.
    """

    stake_amount: float | Literal["unlimited"] = 100.0
    fee: float = 0.001
    max_open_trades: int = 3
    dry_run_wallet: float = 10_000.0
    tradable_balance_ratio: float = 0.99
    exchange: str = "binance"
    data_format: Literal["feather", "parquet", "json", "jsongz"] = "feather"
    min_cost: float = 0.01
    timeout_s: float = 300.0


def build_config(class_name: str, pairs: Sequence[str], timeframe: str, settings: FreqtradeSettings) -> dict[str, Any]:
    """The Freqtrade config of a proof run (``datadir`` and ``user_data_dir`` go in the args:
    Freqtrade ignores a ``datadir`` key in the config file)."""
    quotes = sorted({p.split("/")[1].split(":")[0] for p in pairs})
    if len(quotes) != 1:
        raise FreqtradeRunError(f"pairs {list(pairs)} quote in {quotes}: Freqtrade trades one stake currency")
    futures = any(":" in p for p in pairs)
    return {
        "strategy": class_name,
        "timeframe": timeframe,
        "stake_currency": quotes[0],
        "stake_amount": settings.stake_amount,
        "tradable_balance_ratio": settings.tradable_balance_ratio,
        "fee": settings.fee,
        "max_open_trades": settings.max_open_trades,
        "dry_run": True,
        "dry_run_wallet": settings.dry_run_wallet,
        "trading_mode": "futures" if futures else "spot",
        "margin_mode": "isolated" if futures else "",
        "exchange": {"name": settings.exchange, "pair_whitelist": list(pairs), "pair_blacklist": []},
        "pairlists": [{"method": "StaticPairList"}],
        # Not used by backtesting; order-book pricing is what Binance futures accepts in validation.
        "entry_pricing": {"price_side": "same", "use_order_book": True, "order_book_top": 1},
        "exit_pricing": {"price_side": "same", "use_order_book": True, "order_book_top": 1},
        "dataformat_ohlcv": settings.data_format,
        "backtest_cache": "none",
        "export": "none",
        "internals": {},
        "bot_name": "execdesk-proof",
    }


@dataclass(frozen=True, slots=True)
class FtTrade:
    """One trade of a Freqtrade backtest (dates UTC)."""

    pair: str
    open_date: datetime
    close_date: datetime
    open_rate: float
    close_rate: float
    amount: float
    stake_amount: float
    profit_ratio: float
    profit_abs: float
    exit_reason: str
    is_short: bool
    fee_open: float = 0.0
    fee_close: float = 0.0


@dataclass(frozen=True, slots=True)
class FtLoad:
    """The result of loading a strategy with Freqtrade's own resolver."""

    class_name: str
    attributes: Mapping[str, Any]
    smoke: Mapping[str, Mapping[str, int]] | None
    timings: Mapping[str, float]
    connection_attempts: int
    freqtrade_version: str | None


@dataclass(frozen=True, slots=True)
class FtBacktest:
    """The result of a Freqtrade backtest run offline.

    ``window_start``/``window_end``: the candles Freqtrade traded (after its startup trim);
    ``signals``: per pair and signal column, the epoch-ms open times of the candles marked 1 (when
    asked for); ``config``: the config it ran with.
    """

    strategy: str
    trades: tuple[FtTrade, ...]
    window_start: datetime
    window_end: datetime
    starting_balance: float
    final_balance: float
    fee: float
    candles: Mapping[str, Mapping[str, Any]]
    signals: Mapping[str, Mapping[str, tuple[int, ...]]] | None
    timings: Mapping[str, float]
    connection_attempts: int
    freqtrade_version: str | None
    config: Mapping[str, Any] = field(default_factory=dict)

    @property
    def total_profit(self) -> float:
        """Sum of ``profit_abs`` over the trades (stake currency)."""
        return float(sum(t.profit_abs for t in self.trades))

    def trades_frame(self) -> pd.DataFrame:
        """The trades as a DataFrame with :data:`TRADE_COLUMNS` (dates tz-aware UTC)."""
        rows = [{c: getattr(t, c) for c in TRADE_COLUMNS} for t in self.trades]
        frame = pd.DataFrame(rows, columns=list(TRADE_COLUMNS))
        for column in ("open_date", "close_date"):
            frame[column] = pd.to_datetime(frame[column], utc=True)
        return frame


def freqtrade_available() -> bool:
    """Whether Freqtrade is importable by this interpreter (checked without importing it)."""
    return importlib.util.find_spec("freqtrade") is not None


def run_harness(command: str, args: Mapping[str, Any], *, timeout_s: float, cwd: Path) -> dict[str, Any]:
    """Run one harness command in a subprocess and return its JSON result (``ok`` true or false).

    Raises :class:`FreqtradeUnavailable`, :class:`FreqtradeTimeout`, or :class:`FreqtradeRunError`
    when the subprocess produced no JSON result (with the tail of its stderr).
    """
    if not freqtrade_available():
        raise FreqtradeUnavailable(
            f"Freqtrade is not installed for {sys.executable}; install freqtrade=={TESTED_FREQTRADE_VERSION}"
        )
    cwd.mkdir(parents=True, exist_ok=True)
    args_file = cwd / f"{command}-args.json"
    args_file.write_text(json.dumps(args, default=str), encoding="utf-8")
    cmd = [sys.executable, "-m", HARNESS_MODULE, command, f"@{args_file}"]
    try:
        proc = subprocess.run(  # noqa: S603 — fixed argv: this interpreter, our module, a file we wrote
            cmd, cwd=cwd, env=_environment(), capture_output=True, text=True, timeout=timeout_s, check=False
        )
    except subprocess.TimeoutExpired:
        raise FreqtradeTimeout(f"Freqtrade {command} did not finish within {timeout_s:g} s (killed)") from None
    result = _last_json(proc.stdout)
    if result is None:
        tail = "\n".join(proc.stderr.strip().splitlines()[-15:])
        raise FreqtradeRunError(
            f"Freqtrade {command} exited with code {proc.returncode} and no result; stderr tail:\n{tail}"
        )
    result["stderr_tail"] = "\n".join(proc.stderr.strip().splitlines()[-30:])
    return result


def load_strategy(
    strategy_file: Path,
    class_name: str,
    *,
    pairs: Sequence[str] = ("BTC/USDT",),
    smoke_candles: int = 0,
    timeout_s: float = 120.0,
    work_dir: Path | None = None,
) -> FtLoad:
    """Load ``class_name`` from ``strategy_file`` with Freqtrade's ``StrategyResolver``.

    With ``smoke_candles`` > 0 the populate methods also run through Freqtrade's own checks over a
    seeded random walk of that many candles per pair. Raises :class:`StrategyLoadError` with the
    real reason when the file does not load.
    """
    strategy_file = Path(strategy_file)
    with _work_folder(work_dir) as work:
        copy = _install_strategy(strategy_file, work)
        futures = any(":" in p for p in pairs)
        config = {
            "stake_currency": pairs[0].split("/")[1].split(":")[0] if pairs else "USDT",
            "trading_mode": "futures" if futures else "spot",
            "margin_mode": "isolated" if futures else "",
        }
        args = {
            "strategy_file": str(copy),
            "class_name": class_name,
            "user_data_dir": str(work / "user_data"),
            "config": config,
            "pairs": list(pairs),
            "smoke_candles": smoke_candles,
        }
        result = run_harness("load", args, timeout_s=timeout_s, cwd=work)
    _raise_for_error(result, class_name)
    return FtLoad(
        class_name=str(result["class_name"]),
        attributes=dict(result["attributes"]),
        smoke=result.get("smoke"),
        timings=dict(result.get("timings", {})),
        connection_attempts=int(result["network"]["connection_attempts"]),
        freqtrade_version=result.get("freqtrade_version"),
    )


def backtest_strategy(
    strategy_file: Path,
    class_name: str,
    frames: Mapping[str, pd.DataFrame],
    timeframe: str,
    settings: FreqtradeSettings | None = None,
    *,
    signals: bool = False,
    work_dir: Path | None = None,
    extra_config: Mapping[str, Any] | None = None,
) -> FtBacktest:
    """Backtest ``class_name`` with Freqtrade, offline, on ``frames`` (pair -> candles).

    Spot pairs only (futures pairs raise :class:`FreqtradeRunError`: Freqtrade's futures backtest
    also needs leverage tiers, funding-rate and mark data that the offline seam does not provide).
    The candles are written to a fresh datadir with :func:`~execdesk.data.datadir.write_pair`
    (validated there), the config built by :func:`build_config`. With ``signals`` the result also
    lists every signal Freqtrade's populate methods set. ``work_dir`` keeps the run's folder (for
    inspection); by default a temporary one is removed afterwards. ``extra_config``: more top-level
    config keys (e.g. a bot's ``execdesk_pretrade``, to prove a backtest never asks the desk); a key the
    config sets already is refused.
    """
    settings = settings or FreqtradeSettings()
    if not frames:
        raise FreqtradeRunError("no candles given: frames is empty")
    strategy_file = Path(strategy_file)
    pairs = list(frames)
    config = build_config(class_name, pairs, timeframe, settings)
    for key, value in (extra_config or {}).items():
        if key in config:
            raise FreqtradeRunError(f"extra_config: {key!r} is set by the desk's own config")
        config[key] = value
    if config["trading_mode"] == "futures":
        raise FreqtradeRunError(
            f"futures pairs ({', '.join(p for p in pairs if ':' in p)}): offline Freqtrade backtests support spot "
            "pairs only (a futures backtest also needs leverage tiers, funding-rate and mark-price data)"
        )
    with _work_folder(work_dir) as work:
        copy = _install_strategy(strategy_file, work)
        datadir = work / "data"
        candle_type = "futures" if config["trading_mode"] == "futures" else "spot"
        for pair, frame in frames.items():
            write_pair(datadir, pair, timeframe, frame, fmt=settings.data_format, candle_type=candle_type)
        config_file = work / "config.json"
        config_file.write_text(json.dumps(config, indent=2), encoding="utf-8")
        args = {
            "config_file": str(config_file),
            "strategy": class_name,
            "strategy_path": str(copy.parent),
            "user_data_dir": str(work / "user_data"),
            "datadir": str(datadir),
            "signals": signals,
            "min_cost": settings.min_cost,
        }
        result = run_harness("backtest", args, timeout_s=settings.timeout_s, cwd=work)
    _raise_for_error(result, class_name)
    trades = tuple(_trade(t) for t in result["trades"])
    raw_signals = result.get("signals")
    parsed_signals = (
        None
        if raw_signals is None
        else {
            pair: {col: tuple(int(v) for v in vals) for col, vals in cols.items()} for pair, cols in raw_signals.items()
        }
    )
    return FtBacktest(
        strategy=str(result["strategy"]),
        trades=trades,
        window_start=datetime.fromisoformat(result["window"]["start"]),
        window_end=datetime.fromisoformat(result["window"]["end"]),
        starting_balance=float(result["starting_balance"]),
        final_balance=float(result["final_balance"]),
        fee=float(result["fee"]),
        candles=dict(result["candles"]),
        signals=parsed_signals,
        timings=dict(result.get("timings", {})),
        connection_attempts=int(result["network"]["connection_attempts"]),
        freqtrade_version=result.get("freqtrade_version"),
        config=config,
    )


# -- helpers -------------------------------------------------------------------------------------


def _trade(raw: Mapping[str, Any]) -> FtTrade:
    return FtTrade(
        pair=str(raw["pair"]),
        open_date=datetime.fromisoformat(raw["open_date"]),
        close_date=datetime.fromisoformat(raw["close_date"]),
        open_rate=float(raw["open_rate"]),
        close_rate=float(raw["close_rate"]),
        amount=float(raw["amount"]),
        stake_amount=float(raw["stake_amount"]),
        profit_ratio=float(raw["profit_ratio"]),
        profit_abs=float(raw["profit_abs"]),
        exit_reason=str(raw["exit_reason"]),
        is_short=bool(raw["is_short"]),
        fee_open=float(raw.get("fee_open", 0.0)),
        fee_close=float(raw.get("fee_close", 0.0)),
    )


def _raise_for_error(result: Mapping[str, Any], class_name: str) -> None:
    if result.get("ok"):
        return
    error = result.get("error") or {}
    kind = str(error.get("kind", "unknown"))
    message = str(error.get("message", "no message"))
    if kind == "unavailable":
        raise FreqtradeUnavailable(f"Freqtrade cannot be imported: {message}")
    if kind in ("syntax", "load", "not_found", "read"):
        raise StrategyLoadError(kind, f"strategy {class_name} failed to load: {message}")
    detail = str(error.get("traceback") or result.get("stderr_tail") or "")
    raise FreqtradeRunError(f"Freqtrade failed ({kind}): {message}" + (f"\n{detail}" if detail else ""))


def _last_json(stdout: str) -> dict[str, Any] | None:
    for line in reversed(stdout.strip().splitlines()):
        try:
            value = json.loads(line)
        except ValueError:
            continue
        if isinstance(value, dict) and "ok" in value:
            return value
    return None


def _environment() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FREQTRADE__")}
    # The harness must import this very execdesk, installed or not.
    src = str(Path(execdesk.__file__).resolve().parent.parent)
    env["PYTHONPATH"] = os.pathsep.join([src, *([env["PYTHONPATH"]] if env.get("PYTHONPATH") else [])])
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    env["PYTHONHASHSEED"] = "0"
    return env


def _install_strategy(strategy_file: Path, work: Path) -> Path:
    if not strategy_file.is_file():
        raise StrategyLoadError("read", f"strategy file {strategy_file} does not exist")
    folder = work / "user_data" / "strategies"
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / strategy_file.name
    shutil.copyfile(strategy_file, target)
    return target


@contextmanager
def _work_folder(work_dir: Path | None) -> Iterator[Path]:
    if work_dir is not None:
        work_dir = Path(work_dir)
        work_dir.mkdir(parents=True, exist_ok=True)
        yield work_dir
        return
    with tempfile.TemporaryDirectory(prefix="execdesk-ft-") as tmp:
        yield Path(tmp)
