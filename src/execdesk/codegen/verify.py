"""Verification of a generated strategy against Freqtrade and the desk's own computations.

:func:`verify` renders the bundle (unless given the generated strategy), backtests it with
Freqtrade offline on the given candles (subprocess, :mod:`execdesk.freqtrade.runner`) and checks:

* ``freqtrade_backtest`` — Freqtrade ran the strategy to the end;
* ``offline`` — the run made zero network connection attempts (the harness refuses and counts
  them);
* ``signals_match_reference`` — every entry/exit signal Freqtrade's populate methods set is the one
  :func:`execdesk.strategy.compute_signals` computes for the same candles, candle for candle (so the
  generated code means what the bundle says);
* against the native engine (``execdesk.backtest.engine.run_backtest``, imported lazily, or
  ``native_trades_fn``): ``native_trade_count`` (same number of trades), ``native_trade_dates``
  (the same pair, open and close date per trade) and ``native_total_profit`` (total ``profit_abs``
  within ``config.profit_tolerance``, 1 %, of Freqtrade's; see :func:`profit_within` — for a
  strategy sizing its own stakes by wallet fraction or risk, which the native engine does not
  model, the native total is its per-trade profit ratios times Freqtrade's stakes). When no
  engine is available the single check ``native_engine`` fails with "native engine not available":
  a comparison that did not happen is never reported as passed.

Every difference found is recorded as a :class:`Mismatch` (check, pair, what differed).
"""

from __future__ import annotations

import dataclasses
import importlib
import json
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Final

import numpy as np
import pandas as pd

from execdesk.codegen.render import GeneratedStrategy, StakeSizing, render_strategy
from execdesk.codegen.review import CheckResult, ChecksLookup, checks_table
from execdesk.data.candles import to_arrays
from execdesk.errors import ExecdeskError
from execdesk.freqtrade.runner import (
    FreqtradeSettings,
    FtBacktest,
    backtest_strategy,
)
from execdesk.strategy import StrategyBundle, compute_signals

NATIVE_ENGINE: Final = "execdesk.backtest.engine"
MAX_MISMATCHES_PER_CHECK: Final = 50
_SIGNAL_COLUMNS: Final = (("enter_long", "entry_long"), ("exit_long", "exit_long"), ("enter_short", "entry_short"),
                          ("exit_short", "exit_short"))  # fmt: skip


@dataclass(frozen=True, slots=True)
class VerifyConfig:
    """The run both backtests share (Freqtrade config keys in brackets).

    ``stake_amount`` [stake_amount], ``fee`` [fee, per side], ``max_open_trades``
    [max_open_trades], ``dry_run_wallet`` [dry_run_wallet], ``tradable_balance_ratio``
    [tradable_balance_ratio], ``exchange`` [exchange.name]; ``profit_tolerance`` is the relative
    tolerance of the total-profit comparison, ``timeout_s`` the Freqtrade subprocess timeout.
    """

    stake_amount: float = 100.0
    fee: float = 0.001
    max_open_trades: int = 3
    dry_run_wallet: float = 10_000.0
    tradable_balance_ratio: float = 0.99
    exchange: str = "binance"
    profit_tolerance: float = 0.01
    timeout_s: float = 300.0

    def freqtrade_settings(self) -> FreqtradeSettings:
        """The Freqtrade settings of this config."""
        return FreqtradeSettings(
            stake_amount=self.stake_amount,
            fee=self.fee,
            max_open_trades=self.max_open_trades,
            dry_run_wallet=self.dry_run_wallet,
            tradable_balance_ratio=self.tradable_balance_ratio,
            exchange=self.exchange,
            timeout_s=self.timeout_s,
        )

    def as_dict(self) -> dict[str, Any]:
        """JSON-safe form."""
        return dataclasses.asdict(self)


#: ``native_trades_fn(bundle, frames, config, start)`` -> trades DataFrame with at least the columns
#: pair, open_date, close_date (tz-aware UTC) and profit_abs. ``start`` is the first candle
#: Freqtrade traded (after its startup trim).
NativeTradesFn = Callable[[StrategyBundle, Mapping[str, pd.DataFrame], VerifyConfig, datetime], pd.DataFrame]


@dataclass(frozen=True, slots=True)
class Mismatch:
    """One difference found by a check."""

    check: str
    pair: str | None
    detail: str

    def as_dict(self) -> dict[str, Any]:
        """JSON-safe form."""
        return {"check": self.check, "pair": self.pair, "detail": self.detail}


@dataclass(frozen=True, slots=True)
class VerificationReport(ChecksLookup):
    """The checks of one verification, the mismatches behind failed ones, and run summaries."""

    class_name: str
    bundle_id: str
    bundle_version: int
    data_source: str
    checks: tuple[CheckResult, ...]
    mismatches: tuple[Mismatch, ...] = ()
    freqtrade: Mapping[str, Any] = field(default_factory=dict)
    native: Mapping[str, Any] | None = None
    config: Mapping[str, Any] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        """Whether every check passed."""
        return bool(self.checks) and all(c.passed for c in self.checks)

    def as_dict(self) -> dict[str, Any]:
        """JSON-safe form (what ``verification.json`` holds)."""
        return {
            "class_name": self.class_name,
            "bundle": {"id": self.bundle_id, "version": self.bundle_version},
            "data_source": self.data_source,
            "passed": self.passed,
            "failed": self.failed,
            "checks": [c.as_dict() for c in self.checks],
            "mismatches": [m.as_dict() for m in self.mismatches],
            "freqtrade": dict(self.freqtrade),
            "native": None if self.native is None else dict(self.native),
            "config": dict(self.config),
        }

    def to_markdown(self) -> str:
        """Human form (what ``verification.md`` holds)."""
        verdict = "PASSED" if self.passed else "FAILED: " + ", ".join(self.failed)
        lines = [
            f"# Verification of {self.class_name} (bundle {self.bundle_id} v{self.bundle_version})",
            "",
            f"Data: {self.data_source}",
            "",
            f"**{verdict}**",
            "",
            *checks_table(self.checks),
        ]
        if self.mismatches:
            lines += ["", "## Mismatches", ""]
            lines += [f"- `{m.check}` {m.pair or ''}: {m.detail}" for m in self.mismatches]
        lines += ["", "Config: " + json.dumps(dict(self.config), sort_keys=True), ""]
        return "\n".join(lines)


def verify(
    bundle: StrategyBundle,
    frames: Mapping[str, pd.DataFrame],
    native_trades_fn: NativeTradesFn | None = None,
    config: VerifyConfig | None = None,
    *,
    generated: GeneratedStrategy | None = None,
    strategy_file: Path | None = None,
    sizing: StakeSizing | None = None,
    data_source: str = "candles given by the caller",
    compare_validation: bool = False,
) -> VerificationReport:
    """Verify the generated strategy of ``bundle`` on ``frames`` (pair -> candles); see the module
    docstring for the checks.

    ``generated``/``strategy_file``: the already rendered strategy and its file (rendered and
    written to a temporary folder otherwise). ``native_trades_fn`` replaces the native engine (for
    tests, or another engine). ``sizing`` only matters when rendering here. ``compare_validation``:
    the candles are the market the bundle was validated on, so Freqtrade's trades inside the
    validation period must reproduce its figures (:func:`compare_validation_figures`). Never raises
    for a failed run or comparison: those are failed checks.
    """
    config = config or VerifyConfig()
    generated = generated or render_strategy(bundle, sizing)
    report = VerificationReport(
        class_name=generated.class_name,
        bundle_id=bundle.id,
        bundle_version=bundle.version,
        data_source=data_source,
        checks=(),
        config=config.as_dict(),
    )
    with tempfile.TemporaryDirectory(prefix="execdesk-verify-") as tmp:
        if strategy_file is None:
            strategy_file = Path(tmp) / generated.filename
            strategy_file.write_text(generated.source, encoding="utf-8")
        start = time.perf_counter()
        try:
            ft = backtest_strategy(
                strategy_file,
                generated.class_name,
                frames,
                bundle.timeframe,
                config.freqtrade_settings(),
                signals=True,
            )
        except ExecdeskError as exc:
            failed = CheckResult(
                "freqtrade_backtest", False, f"{type(exc).__name__}: {exc}", None, time.perf_counter() - start
            )
            return dataclasses.replace(report, checks=(failed,))
    elapsed = time.perf_counter() - start
    checks: list[CheckResult] = [
        CheckResult(
            "freqtrade_backtest",
            True,
            f"{len(ft.trades)} trades, total profit {ft.total_profit:.8f} {ft.config.get('stake_currency', '')} "
            f"from {ft.window_start.isoformat()} to {ft.window_end.isoformat()} "
            f"(backtest {ft.timings.get('backtest_s', 0):.2f} s, subprocess total {elapsed:.2f} s)",
            {"timings": dict(ft.timings)},
            elapsed,
        ),
        CheckResult(
            "offline",
            ft.connection_attempts == 0,
            f"{ft.connection_attempts} network connection attempt(s) during the Freqtrade run",
        ),
    ]
    mismatches: list[Mismatch] = []
    if compare_validation:
        validation_check, validation_mismatches = compare_validation_figures(bundle, ft, config.profit_tolerance)
        checks.append(validation_check)
        mismatches += validation_mismatches
    signal_check, signal_mismatches = _compare_signals(bundle, frames, ft)
    checks.append(signal_check)
    mismatches += signal_mismatches
    native_summary: dict[str, Any] | None = None
    fn, unavailable = (native_trades_fn, None) if native_trades_fn is not None else _native_engine()
    if fn is None:
        checks.append(CheckResult("native_engine", False, f"native engine not available: {unavailable}"))
    else:
        start = time.perf_counter()
        try:
            native = fn(bundle, frames, config, ft.window_start)
        except Exception as exc:  # the engine's failure is a failed check, not a crash of the proof
            checks.append(
                CheckResult("native_engine", False, f"native engine failed: {type(exc).__name__}: {exc}", None)
            )
        else:
            native_elapsed = time.perf_counter() - start
            custom = generated.sizing is not None and generated.sizing.method != "fixed"
            native_checks, native_mismatches, native_summary = _compare_trades(
                ft, native, config.profit_tolerance, custom_stakes=custom
            )
            native_summary["duration_s"] = round(native_elapsed, 3)
            checks += native_checks
            mismatches += native_mismatches
    return dataclasses.replace(
        report, checks=tuple(checks), mismatches=tuple(mismatches), freqtrade=_ft_summary(ft), native=native_summary
    )


def compare_validation_figures(bundle: StrategyBundle, ft: FtBacktest, tolerance: float
                               ) -> tuple[CheckResult, list[Mismatch]]:
    """Freqtrade's trades opened inside the bundle's validation period against the figures the
    validation report gives: trade count, win rate and profit factor, each within ``tolerance``
    (relative). These three do not depend on the stake; the report's total profit and drawdown do
    (they are account-level at the validation's own stake, which the bundle does not state), so
    they are not compared.
    """
    v = bundle.validation
    start = pd.Timestamp(v.period.start, tz="UTC")
    end = pd.Timestamp(v.period.end, tz="UTC") + pd.Timedelta(days=1)
    trades = [t for t in ft.trades if start <= _ts(t.open_date) < end]
    wins = [t.profit_abs for t in trades if t.profit_abs > 0]
    losses = [-t.profit_abs for t in trades if t.profit_abs < 0]
    live = {
        "trades": float(len(trades)),
        "win_rate": len(wins) / len(trades) if trades else 0.0,
        "profit_factor": sum(wins) / sum(losses) if losses else (float("inf") if wins else 0.0),
    }
    expected = {"trades": float(v.trades), "win_rate": v.win_rate, "profit_factor": v.profit_factor}
    mismatches = [
        Mismatch("validation_figures", None, f"{name}: Freqtrade {live[name]:.6g}, validation report {want:.6g}")
        for name, want in expected.items()
        if not abs(live[name] - want) <= tolerance * abs(want)
    ]
    detail = ", ".join(f"{k} {live[k]:.4g} vs {expected[k]:.4g}" for k in expected)
    return (CheckResult("validation_figures", not mismatches,
                        f"inside {v.period.start}..{v.period.end}: {detail} (tolerance {tolerance:.0%})",
                        {"freqtrade": live, "validation": expected}), mismatches)


def profit_within(freqtrade_total: float, native_total: float, tolerance: float) -> bool:
    """``|native - freqtrade| <= tolerance x max(|freqtrade|, |native|)`` (plus 1e-9 for zeros)."""
    return abs(native_total - freqtrade_total) <= tolerance * max(abs(freqtrade_total), abs(native_total)) + 1e-9


# -- native engine -------------------------------------------------------------------------------


def _native_engine() -> tuple[NativeTradesFn | None, str | None]:
    try:
        module = importlib.import_module(NATIVE_ENGINE)
    except ModuleNotFoundError as exc:
        if exc.name in (NATIVE_ENGINE, "execdesk.backtest"):
            return None, f"{NATIVE_ENGINE} does not exist"
        return None, f"{NATIVE_ENGINE} failed to import: {exc}"
    except Exception as exc:  # a half-written engine must not break the proof of the strategy
        return None, f"{NATIVE_ENGINE} failed to import: {type(exc).__name__}: {exc}"
    run = getattr(module, "run_backtest", None)
    config_class = getattr(module, "BacktestConfig", None)
    if run is None or config_class is None:
        return None, f"{NATIVE_ENGINE} has no run_backtest/BacktestConfig"

    def native(
        bundle: StrategyBundle, frames: Mapping[str, pd.DataFrame], config: VerifyConfig, start: datetime
    ) -> pd.DataFrame:
        wanted: dict[str, Any] = {
            "stake_amount": config.stake_amount,
            "fee": config.fee,
            "max_open_trades": config.max_open_trades,
            "dry_run_wallet": config.dry_run_wallet,
            "start": start,
            "tradable_balance_ratio": config.tradable_balance_ratio,
            "pairs": tuple(frames),
            "can_short": "entry.short" in bundle.expressions,
        }
        known = {f.name for f in dataclasses.fields(config_class)} if dataclasses.is_dataclass(config_class) else None
        kwargs = {k: v for k, v in wanted.items() if known is None or k in known}
        result = run(bundle, frames, config_class(**kwargs))
        trades = result.trades
        if not isinstance(trades, pd.DataFrame):
            raise TypeError(f"run_backtest returned trades of type {type(trades).__name__}, not a DataFrame")
        return trades

    return native, None


# -- comparisons -------------------------------------------------------------------------------


def _compare_signals(
    bundle: StrategyBundle, frames: Mapping[str, pd.DataFrame], ft: FtBacktest
) -> tuple[CheckResult, list[Mismatch]]:
    name = "signals_match_reference"
    if ft.signals is None:
        return CheckResult(name, False, "Freqtrade reported no signals"), []
    mismatches: list[Mismatch] = []
    compared = 0
    for pair, frame in frames.items():
        arrays = to_arrays(frame, pair)
        reference = compute_signals(
            bundle,
            {
                "open": arrays.open,
                "high": arrays.high,
                "low": arrays.low,
                "close": arrays.close,
                "volume": arrays.volume,
            },
        )
        times_ms = arrays.time.astype(np.int64) * 1000
        got = ft.signals.get(pair)
        if got is None:
            mismatches.append(Mismatch(name, pair, "Freqtrade produced no signals for this pair"))
            continue
        for ft_column, ref_field in _SIGNAL_COLUMNS:
            want = set(times_ms[getattr(reference, ref_field)].tolist())
            have = set(got.get(ft_column, ()))
            compared += len(want)
            for label, extra in (("only in Freqtrade", have - want), ("only in the reference", want - have)):
                for ms in sorted(extra)[:MAX_MISMATCHES_PER_CHECK]:
                    stamp = pd.Timestamp(ms, unit="ms", tz="UTC").isoformat()
                    mismatches.append(Mismatch(name, pair, f"{ft_column} at {stamp}: {label}"))
    if mismatches:
        return CheckResult(name, False, f"{len(mismatches)} signal(s) differ from compute_signals"), mismatches
    detail = f"{compared} reference signals over {len(frames)} pair(s), all equal to Freqtrade's, none extra"
    return CheckResult(name, True, detail), []


def _compare_trades(
    ft: FtBacktest, native: pd.DataFrame, tolerance: float, *, custom_stakes: bool = False
) -> tuple[list[CheckResult], list[Mismatch], dict[str, Any]]:
    """Count, dates and total profit; with ``custom_stakes`` (the strategy sizes its own stakes,
    which the native engine does not model) the native total is each matched trade's
    ``profit_ratio`` x Freqtrade's stake of that trade."""
    missing = [c for c in ("pair", "open_date", "close_date", "profit_abs") if c not in native.columns]
    if missing:
        failed = CheckResult("native_engine", False, f"native trades lack column(s) {', '.join(missing)}")
        return [failed], [], {"trades": len(native)}
    ft_rows = sorted((t.pair, _ts(t.open_date), _ts(t.close_date)) for t in ft.trades)
    native_rows = sorted(
        (str(p), _ts(o), _ts(c))
        for p, o, c in zip(native["pair"], native["open_date"], native["close_date"], strict=True)
    )
    ft_total = ft.total_profit
    native_total = float(native["profit_abs"].sum())
    checks: list[CheckResult] = []
    mismatches: list[Mismatch] = []
    count_ok = len(ft_rows) == len(native_rows)
    checks.append(
        CheckResult(
            "native_trade_count", count_ok, f"Freqtrade {len(ft_rows)} trades, native engine {len(native_rows)}"
        )
    )
    if not count_ok:
        mismatches.append(Mismatch("native_trade_count", None, f"{len(ft_rows)} vs {len(native_rows)} trades"))
    only_ft = sorted(set(ft_rows) - set(native_rows))
    only_native = sorted(set(native_rows) - set(ft_rows))
    for label, rows in (("only in Freqtrade", only_ft), ("only in the native engine", only_native)):
        for pair, opened, closed in rows[:MAX_MISMATCHES_PER_CHECK]:
            mismatches.append(
                Mismatch("native_trade_dates", pair, f"trade {opened.isoformat()} -> {closed.isoformat()}: {label}")
            )
    dates_ok = not only_ft and not only_native and count_ok
    checks.append(
        CheckResult(
            "native_trade_dates",
            dates_ok,
            "every trade has the same pair, open and close date"
            if dates_ok
            else f"{len(only_ft)} trade(s) only in Freqtrade, {len(only_native)} only in the native engine",
        )
    )
    how = ""
    if custom_stakes:
        how = "; native profit ratios x Freqtrade's stakes (the strategy sizes its own stakes)"
        if "profit_ratio" not in native.columns or not dates_ok:
            detail = "not comparable: the strategy sizes its own stakes and the trades do not match one to one"
            checks.append(CheckResult("native_total_profit", False, detail))
            mismatches.append(Mismatch("native_total_profit", None, detail))
            return checks, mismatches, {"trades": len(native_rows), "total_profit": native_total}
        ratios = {
            (str(p), _ts(o), _ts(c)): float(r)
            for p, o, c, r in zip(
                native["pair"], native["open_date"], native["close_date"], native["profit_ratio"], strict=True
            )
        }
        native_total = sum(
            ratios[(t.pair, _ts(t.open_date), _ts(t.close_date))] * t.stake_amount * (1 + t.fee_open) for t in ft.trades
        )
    profit_ok = profit_within(ft_total, native_total, tolerance)
    diff = native_total - ft_total
    checks.append(
        CheckResult(
            "native_total_profit",
            profit_ok,
            f"Freqtrade {ft_total:.8f}, native {native_total:.8f} (difference {diff:+.8f}; "
            f"tolerance {tolerance:.0%}{how})",
        )
    )
    if not profit_ok:
        mismatches.append(Mismatch("native_total_profit", None, f"difference {diff:+.8f} beyond {tolerance:.0%}"))
    summary = {"trades": len(native_rows), "total_profit": native_total}
    return checks, mismatches, summary


def _ts(value: Any) -> pd.Timestamp:
    stamp = pd.Timestamp(value)
    return stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")


def _ft_summary(ft: FtBacktest) -> dict[str, Any]:
    return {
        "freqtrade_version": ft.freqtrade_version,
        "trades": len(ft.trades),
        "total_profit": ft.total_profit,
        "window": {"start": ft.window_start.isoformat(), "end": ft.window_end.isoformat()},
        "starting_balance": ft.starting_balance,
        "final_balance": ft.final_balance,
        "connection_attempts": ft.connection_attempts,
        "timings": dict(ft.timings),
        "config": dict(ft.config),
    }
