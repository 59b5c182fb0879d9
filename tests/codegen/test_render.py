"""Rendering: determinism, spec values, names, wrapping, sizing, and what the code computes."""

from __future__ import annotations

import sys
import types
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from execdesk.codegen.audit import audit_source
from execdesk.codegen.render import (
    LINE_LENGTH,
    GeneratedStrategy,
    StakeSizing,
    class_name_for,
    column_ref,
    render_strategy,
)
from execdesk.codegen.review import _ruff
from execdesk.errors import InvalidInput
from execdesk.strategy import StrategyBundle, compute_signals, load_bundle

from .conftest import EXAMPLE_FILES, EXAMPLES, make_bundle, market

# -- the examples --------------------------------------------------------------------------------


@pytest.mark.parametrize("name", EXAMPLE_FILES)
def test_render_when_same_bundle_twice_then_same_bytes(name: str) -> None:
    first = render_strategy(load_bundle(EXAMPLES / name))
    second = render_strategy(load_bundle(EXAMPLES / name))
    assert first.source.encode() == second.source.encode()
    assert first.readme.encode() == second.readme.encode()
    assert first.filename == second.filename
    assert first.class_name == second.class_name


@pytest.mark.parametrize("name", EXAMPLE_FILES)
def test_render_when_example_then_compiles_passes_ruff_and_audit(name: str, tmp_path: Path) -> None:
    assert_compiles_passes_ruff_and_audit(render_strategy(load_bundle(EXAMPLES / name)), tmp_path)


def assert_compiles_passes_ruff_and_audit(generated: GeneratedStrategy, tmp_path: Path) -> None:
    """The generated source compiles, passes the AST audit and ruff, and keeps to the line length."""
    compile(generated.source, generated.filename, "exec")
    assert audit_source(generated.source, generated.allowed) == []
    path = tmp_path / generated.filename
    path.write_text(generated.source)
    ruff = _ruff(path)
    assert ruff.passed, ruff.detail
    assert all(len(line) <= LINE_LENGTH for line in generated.source.splitlines())


def test_render_when_example_then_spec_values_embedded(examples: dict[str, StrategyBundle]) -> None:
    bundle = examples["breakout_4h.yaml"]
    source = render_strategy(bundle).source
    assert "class DonchianBreakoutV1(IStrategy):" in source
    assert "INTERFACE_VERSION = 3" in source
    assert 'timeframe = "4h"' in source
    assert "stoploss = -0.08" in source
    assert 'minimal_roi = {"0": 0.3}' in source
    assert "trailing_stop = True" in source
    assert "trailing_stop_positive = 0.03" in source
    assert "trailing_stop_positive_offset = 0.06" in source
    assert "trailing_only_offset_is_reached = True" in source
    assert f"startup_candle_count = {bundle.startup_candles}" in source
    assert "process_only_new_candles = True" in source
    assert "can_short = False" in source
    assert bundle.bundle_hash in source
    assert "Bundle id: STR-004" in source
    assert "import talib" not in source  # no indicator declared: no unused import


def test_render_when_indicators_then_parameters_are_class_attributes(examples: dict[str, StrategyBundle]) -> None:
    source = render_strategy(examples["momentum_macd.yaml"]).source
    assert "param_macd_fast = 12" in source
    assert "param_ema_200_period = 200" in source
    assert "signalperiod=self.param_macd_signal" in source
    assert "timeperiod=self.param_adx_period" in source
    # multi-output indicators unpack into their output columns
    assert 'dataframe["macd_hist"],' in source
    source = render_strategy(examples["mean_revert_bbands.yaml"]).source
    assert "nbdevup=self.param_bb_stddev" in source
    assert "nbdevdn=self.param_bb_stddev" in source
    assert "matype=0" in source


def test_render_when_readme_then_says_how_to_run(examples: dict[str, StrategyBundle]) -> None:
    generated = render_strategy(examples["trend_ema_cross.yaml"])
    readme = generated.readme
    for needle in (
        "freqtrade download-data",
        "freqtrade backtesting --config config.json --strategy EmaCrossRsiV1",
        "--cache none",
        "freqtrade trade --config config.json --strategy EmaCrossRsiV1",
        "--dry-run",
        '"stake_currency": "USDT"',
        '"pair_whitelist": ["BTC/USDT", "ETH/USDT"]',
        '"pairlists": [{"method": "StaticPairList"}]',
        "--timerange 20240101-20240630",
        generated.filename,
    ):
        assert needle in readme, needle


# -- names ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "version", "expected"),
    [("ema_cross_rsi", 1, "EmaCrossRsiV1"), ("ema_2x__cross", 3, "Ema2xCrossV3"), ("x", 12, "XV12")],
)
def test_class_name_when_bundle_name_then_camel_case_identifier(name: str, version: int, expected: str) -> None:
    bundle = make_bundle(name=name, version=version)
    assert class_name_for(bundle) == expected
    assert render_strategy(bundle).filename == f"{name}_v{version}.py"


@pytest.mark.parametrize("name", ["__class__", "a b", "dataframe[0]", "1x", "class"])
def test_column_ref_when_not_a_plain_identifier_then_refused(name: str) -> None:
    with pytest.raises(InvalidInput):
        column_ref(name)


def test_render_when_pairs_quote_differently_then_refused() -> None:
    with pytest.raises(InvalidInput, match="one stake currency"):
        render_strategy(make_bundle(pairs=["BTC/USDT", "ETH/BTC"]))


# -- conditions come from the tree, never the text ---------------------------------------------


def test_render_when_condition_text_then_code_comes_from_the_tree() -> None:
    bundle = make_bundle(
        entry={"long": "rsi<30   and(close>ema_fast)"},
        exit={"long": "rsi >= 70"},
        description='"""\nimport os; os.system("rm -rf /")  # ```',
    )
    generated = render_strategy(bundle)
    assert '(dataframe["rsi"] < 30)' in generated.source
    assert '(dataframe["close"] > dataframe["ema_fast"])' in generated.source
    assert "rsi<30" not in generated.source  # the user's spelling never reaches the code
    assert "entry.long: rsi < 30 and close > ema_fast" in generated.source  # the canonical form documents it
    assert "os.system" not in generated.source
    assert "import os" not in generated.source
    assert "os.system" in generated.readme
    assert "```text" in generated.readme
    assert audit_source(generated.source, generated.allowed) == []


def test_render_when_expression_is_long_then_lines_wrap_and_stay_clean(tmp_path: Path) -> None:
    text = " and ".join(f"close > shift(rolling_max(high, {i}), {i})" for i in range(1, 40))
    generated = render_strategy(make_bundle(entry={"long": text}))
    for line in generated.source.splitlines():
        assert len(line) <= LINE_LENGTH or " " not in line.strip(), line
    compile(generated.source, generated.filename, "exec")
    assert audit_source(generated.source, generated.allowed) == []
    path = tmp_path / generated.filename
    path.write_text(generated.source)
    assert _ruff(path).passed


# -- what the generated code computes ------------------------------------------------------------


class _StubStrategy:
    """Stands in for freqtrade.strategy.IStrategy: the generated code uses only ``wallets``."""

    wallets: Any = None


def _load_class(generated: GeneratedStrategy, monkeypatch: pytest.MonkeyPatch, base: type[Any] | None = None
                ) -> type[Any]:
    """Execute the (audited) generated module against a stub ``freqtrade.strategy`` whose ``IStrategy`` is ``base``
    (default: one with ``wallets`` only)."""
    assert audit_source(generated.source, generated.allowed) == []
    package = types.ModuleType("freqtrade")
    module = types.ModuleType("freqtrade.strategy")
    module.IStrategy = base or _StubStrategy  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "freqtrade", package)
    monkeypatch.setitem(sys.modules, "freqtrade.strategy", module)
    namespace: dict[str, Any] = {"__name__": "generated_under_test"}
    exec(compile(generated.source, generated.filename, "exec"), namespace)  # the audited generated module
    cls = namespace[generated.class_name]
    assert isinstance(cls, type)
    return cls


def _signals_of(cls: type[Any], frame: pd.DataFrame) -> pd.DataFrame:
    strategy = cls()
    df = frame.copy()
    df = strategy.populate_indicators(df, {"pair": "X"})
    df = strategy.populate_entry_trend(df, {"pair": "X"})
    return strategy.populate_exit_trend(df, {"pair": "X"})


EXPRESSIONS = {
    "entry": {
        "long": "crossed_above(ema_fast, ema_slow) and rsi < 70 and macd_hist > 0 and close > bb_lower",
        "short": "crossed_below(st_k, st_d) and adx > 20 or cci != 0 and not (mfi > 80)",
    },
    "exit": {
        "long": "abs(close - sma_hi) / atr > 1.5 or obv < rolling_mean(obv, 20) or rsi ** 2 > 6400",
        "short": "close > shift(rolling_max(high, 10), 1) or macd_signal > macd",
    },
}


def test_generated_code_when_run_then_equals_reference_signals_and_warmup(monkeypatch: pytest.MonkeyPatch) -> None:
    bundle = make_bundle(**EXPRESSIONS)
    generated = render_strategy(bundle)
    assert "can_short = True" in generated.source
    cls = _load_class(generated, monkeypatch)
    frame = market(("BTC/USDT",), "1h", 1500)["BTC/USDT"]
    out = _signals_of(cls, frame)
    ohlcv = {c: frame[c].to_numpy(dtype=np.float64) for c in ("open", "high", "low", "close", "volume")}
    reference = compute_signals(bundle, ohlcv)
    pairs = (("enter_long", "entry_long"), ("exit_long", "exit_long"), ("enter_short", "entry_short"),
             ("exit_short", "exit_short"))  # fmt: skip
    for column, field in pairs:
        got = out[column].to_numpy()
        want = getattr(reference, field)
        assert got.dtype.kind == "i"
        np.testing.assert_array_equal(got == 1, want, err_msg=column)
        assert not got[: bundle.startup_candles].any(), f"{column} signals during warm-up"
        assert want.sum() > 0, f"{column} never fires: the test would prove little"
    # indicator columns are NaN during their warm-up, and no condition is true there
    assert out["ema_slow"].isna().sum() == 25
    assert out["macd_hist"].isna().any()


def test_generated_code_when_frame_shorter_than_warmup_then_no_signal(monkeypatch: pytest.MonkeyPatch) -> None:
    bundle = make_bundle(entry={"long": "not (close > ema_slow)"}, exit={"long": "rsi != 50"})
    cls = _load_class(render_strategy(bundle), monkeypatch)
    frame = market(("BTC/USDT",), "1h", 40)["BTC/USDT"]
    assert bundle.startup_candles > 30
    out = _signals_of(cls, frame)
    assert not out["enter_long"].iloc[: bundle.startup_candles].any()
    assert not out["exit_long"].iloc[: bundle.startup_candles].any()


# -- stake sizing ---------------------------------------------------------------------------------


class _Wallets:
    def __init__(self, total: float) -> None:
        self.total = total

    def get_total_stake_amount(self) -> float:
        return self.total


@pytest.mark.parametrize(
    ("sizing", "wallet", "max_stake", "expected"),
    [
        (StakeSizing.fixed(50), 1000.0, 500.0, 50.0),
        (StakeSizing.fixed(50), 1000.0, 20.0, 20.0),
        (StakeSizing.wallet_fraction(0.1), 1000.0, 500.0, 100.0),
        (StakeSizing.risk(0.01, 0.25), 1000.0, 500.0, 200.0),  # 1000 x 0.01 / 0.05
        (StakeSizing.risk(0.02, 0.25), 1000.0, 500.0, 250.0),  # 400 capped at 25 %
        (StakeSizing.risk(0.02, 1.0), 1000.0, 120.0, 120.0),  # never above max_stake
    ],
)
def test_custom_stake_amount_when_sizing_then_risk_manager_stake(
    sizing: StakeSizing,
    wallet: float,
    max_stake: float,
    expected: float,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    generated = render_strategy(make_bundle(stoploss=-0.05), sizing)
    assert "def custom_stake_amount(" in generated.source
    assert "from datetime import datetime" in generated.source
    path = tmp_path / generated.filename
    path.write_text(generated.source)
    assert _ruff(path).passed
    strategy = _load_class(generated, monkeypatch)()
    strategy.wallets = _Wallets(wallet)
    stake = strategy.custom_stake_amount(
        pair="BTC/USDT",
        current_time=None,
        current_rate=100.0,
        proposed_stake=10.0,
        min_stake=1.0,
        max_stake=max_stake,
        leverage=1.0,
        entry_tag=None,
        side="long",
    )
    assert stake == pytest.approx(expected)


def test_render_when_no_sizing_then_no_custom_stake_amount(examples: dict[str, StrategyBundle]) -> None:
    source = render_strategy(examples["trend_ema_cross.yaml"]).source
    assert "custom_stake_amount" not in source
    assert "datetime" not in source


@pytest.mark.parametrize(
    "build",
    [
        lambda: StakeSizing.fixed(0),
        lambda: StakeSizing.fixed(float("nan")),
        lambda: StakeSizing.wallet_fraction(1.5),
        lambda: StakeSizing.risk(0.01, 0.0),
        lambda: StakeSizing("kelly", 0.5),  # type: ignore[arg-type]
        lambda: StakeSizing.fixed(True),  # type: ignore[arg-type]
    ],
)
def test_stake_sizing_when_invalid_then_invalid_input(build: Callable[[], StakeSizing]) -> None:
    with pytest.raises(InvalidInput, match="StakeSizing"):
        build()
