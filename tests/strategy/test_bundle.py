"""Tests of bundle loading: examples, normalisation, hashing, malformed input, folders, intake."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from execdesk.errors import FieldIssue, InvalidInput, SpecError
from execdesk.strategy import StrategyBundle, load_bundle, validate_bundle

from .conftest import EXAMPLE_FILES, EXAMPLES

WriteYaml = Callable[..., Path]


def load_issues(path: Path) -> list[FieldIssue]:
    with pytest.raises(SpecError) as info:
        load_bundle(path)
    assert info.value.source == str(path)
    assert isinstance(info.value, InvalidInput)
    return info.value.issues


def issue_at(issues: list[FieldIssue], path: str) -> FieldIssue:
    found = [i for i in issues if i.path == path]
    assert found, f"no issue at {path!r} in {issues}"
    return found[0]


# -- the examples ---------------------------------------------------------------------------------


@pytest.mark.parametrize("name", EXAMPLE_FILES)
def test_load_bundle_when_example_then_loads_and_signals_parse(name: str) -> None:
    bundle = load_bundle(EXAMPLES / name)
    assert bundle.expressions["entry.long"].kind == "bool"
    assert bundle.description
    assert len(bundle.bundle_hash) == 64


@pytest.mark.parametrize(
    ("name", "bid", "strategy", "pairs", "timeframe", "stoploss"),
    [
        ("trend_ema_cross.yaml", "STR-001", "ema_cross_rsi", ("BTC/USDT", "ETH/USDT"), "1h", -0.05),
        ("mean_revert_bbands.yaml", "STR-002", "bb_mean_revert", ("SOL/USDT",), "1h", -0.06),
        ("momentum_macd.yaml", "STR-003", "macd_momentum", ("ETH/USDT", "AVAX/USDT"), "1h", -0.12),
        ("breakout_4h.yaml", "STR-004", "donchian_breakout", ("BTC/USDT",), "4h", -0.08),
    ],
)
def test_example_when_loaded_then_identity_matches_catalogue(
    name: str, bid: str, strategy: str, pairs: tuple[str, ...], timeframe: str, stoploss: float
) -> None:
    bundle = load_bundle(EXAMPLES / name)
    assert (bundle.id, bundle.name, bundle.pairs, bundle.timeframe, bundle.stoploss) == (
        bid,
        strategy,
        pairs,
        timeframe,
        stoploss,
    )


def test_example_when_trend_bundle_then_fields_as_documented() -> None:
    bundle = load_bundle(EXAMPLES / "trend_ema_cross.yaml")
    report = bundle.validation
    assert report.period.start == date(2024, 1, 1)
    assert report.avg_trade_duration == timedelta(hours=7)
    assert (report.trades, report.sharpe, report.max_drawdown) == (87, 1.4, 0.12)
    assert bundle.minimal_roi == {"0": 0.10, "120": 0.03}
    assert bundle.startup_candles == 25 + 1  # EMA(26) lookback + one bar for the cross


def test_startup_candles_when_breakout_then_window_plus_shift() -> None:
    assert load_bundle(EXAMPLES / "breakout_4h.yaml").startup_candles == 19 + 1


# -- normalisation and hashing --------------------------------------------------------------------


def test_bundle_hash_when_key_order_and_formatting_differ_then_equal(valid: dict[str, Any]) -> None:
    reordered = dict(reversed(list(valid.items())))
    reordered["validation"] = dict(reversed(list(valid["validation"].items())))
    reordered["entry"] = {"long": "crossed_above( ema_fast,ema_slow )  and (rsi < 70)"}
    reordered["minimal_roi"] = {120: 0.03, 0: 0.1}
    reordered["indicators"]["rsi"] = {"period": 14, "fn": "rsi", "source": "close"}
    assert validate_bundle(reordered).bundle_hash == validate_bundle(valid).bundle_hash


def test_bundle_hash_when_yaml_and_json_files_hold_same_bundle_then_equal(
    valid: dict[str, Any], write_yaml: WriteYaml, tmp_path: Path
) -> None:
    json_path = tmp_path / "b.json"
    json_path.write_text(json.dumps(valid))
    assert load_bundle(write_yaml(valid)).bundle_hash == load_bundle(json_path).bundle_hash


@pytest.mark.parametrize(
    ("field", "value"),
    [("stoploss", -0.06), ("version", 2), ("pairs", ["BTC/USDT"]), ("entry", {"long": "rsi < 60"})],
)
def test_bundle_hash_when_content_changes_then_differs(valid: dict[str, Any], field: str, value: Any) -> None:
    before = validate_bundle(valid).bundle_hash
    valid[field] = value
    assert validate_bundle(valid).bundle_hash != before


def test_to_canonical_dict_when_dumped_then_json_safe_sorted_and_iso(valid: dict[str, Any]) -> None:
    canonical = validate_bundle(valid).to_canonical_dict()
    assert list(canonical) == sorted(canonical)
    assert canonical["validation"]["period"] == {"end": "2024-06-30", "start": "2024-01-01"}
    assert canonical["validation"]["avg_trade_duration"] == 420
    assert canonical["indicators"]["rsi"] == {"fn": "RSI", "period": 14, "source": "close"}
    assert "trailing_stop" not in canonical
    assert validate_bundle(json.loads(json.dumps(canonical))).bundle_hash == validate_bundle(valid).bundle_hash


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("7h", timedelta(hours=7)),
        ("45m", timedelta(minutes=45)),
        ("1d 6h", timedelta(days=1, hours=6)),
        ("2d", timedelta(days=2)),
        ("1h30m", timedelta(minutes=90)),
        ("90", timedelta(minutes=90)),
        (90, timedelta(minutes=90)),
        (7.5, timedelta(minutes=7.5)),
        ("PT7H", timedelta(hours=7)),  # ISO 8601: what the model's own JSON dump writes
        ("P1DT6H30M", timedelta(days=1, hours=6, minutes=30)),
    ],
)
def test_avg_trade_duration_when_written_forms_then_timedelta(
    valid: dict[str, Any], text: str | float, expected: timedelta
) -> None:
    valid["validation"]["avg_trade_duration"] = text
    assert validate_bundle(valid).validation.avg_trade_duration == expected


@pytest.mark.parametrize("text", ["7 hours", "h", "-3h", -5, True, "", "1y", [1], "P", "-PT3H", "PT7X"])
def test_avg_trade_duration_when_malformed_then_issue(valid: dict[str, Any], text: object) -> None:
    valid["validation"]["avg_trade_duration"] = text
    with pytest.raises(SpecError) as info:
        validate_bundle(valid)
    assert issue_at(info.value.issues, "validation.avg_trade_duration").expected.startswith("a duration")


def test_validation_when_dumped_to_json_and_read_back_then_equal(valid: dict[str, Any]) -> None:
    # the ledger keeps the report as model_dump(mode="json"); the monitor and reports read it back
    report = validate_bundle(valid).validation
    assert type(report).model_validate(report.model_dump(mode="json")) == report


def test_bundle_when_assigned_then_frozen(valid: dict[str, Any]) -> None:
    bundle = validate_bundle(valid)
    with pytest.raises(ValidationError):
        bundle.stoploss = -0.5  # type: ignore[misc]


# -- malformed bundles ----------------------------------------------------------------------------


def test_load_bundle_when_field_missing_then_path_and_missing_value(
    valid: dict[str, Any], write_yaml: WriteYaml
) -> None:
    del valid["name"]
    del valid["validation"]["sharpe"]
    issues = load_issues(write_yaml(valid))
    assert issue_at(issues, "name").value == "(missing)"
    assert issue_at(issues, "validation.sharpe").expected.startswith("a required field")


@pytest.mark.parametrize(
    ("path", "value", "shown"),
    [
        ("version", "one", "'one'"),
        ("version", 1.5, "1.5"),
        ("stoploss", "x", "'x'"),
        ("stoploss", True, "True"),
        ("pairs", "BTC/USDT", "'BTC/USDT'"),
        ("timeframe", "2d", "'2d'"),
        ("indicators", [1, 2], "[1, 2]"),
        ("validation.trades", 8.5, "8.5"),
        ("validation.win_rate", 1.5, "1.5"),
        ("validation.period.start", 20240101, "20240101"),
        ("entry.long", 5, "5"),
    ],
)
def test_load_bundle_when_wrong_type_then_path_and_value(
    valid: dict[str, Any], write_yaml: WriteYaml, path: str, value: Any, shown: str
) -> None:
    *parents, leaf = path.split(".")
    target = valid
    for key in parents:
        target = target[key]
    target[leaf] = value
    assert issue_at(load_issues(write_yaml(valid)), path).value == shown


def test_load_bundle_when_unknown_indicator_then_path_value_and_known_list(
    valid: dict[str, Any], write_yaml: WriteYaml
) -> None:
    valid["indicators"]["rsi"] = {"fn": "RSX", "period": 14}
    issue = issue_at(load_issues(write_yaml(valid)), "indicators.rsi.fn")
    assert issue.value == "'RSX'"
    assert "EMA" in issue.expected
    assert "STOCH" in issue.expected


def test_load_bundle_when_indicator_parameter_bad_then_dotted_path(
    valid: dict[str, Any], write_yaml: WriteYaml
) -> None:
    valid["indicators"]["rsi"]["period"] = 0
    assert issue_at(load_issues(write_yaml(valid)), "indicators.rsi.period").value == "0"


def test_load_bundle_when_bad_yaml_then_line_and_column(write_yaml: WriteYaml) -> None:
    (issue,) = load_issues(write_yaml("id: STR-1\nname: [unclosed\nversion: 1\n"))
    assert issue.path.startswith("line 3, column")
    assert issue.value == "'version: 1'"
    assert "valid YAML" in issue.expected


def test_load_bundle_when_bad_json_then_line_and_column(tmp_path: Path) -> None:
    path = tmp_path / "b.json"
    path.write_text('{"id": "x",\n  "name": }')
    (issue,) = load_issues(path)
    assert issue.path == "line 2, column 11"
    assert "valid JSON" in issue.expected


@pytest.mark.parametrize("content", ["", "   \n\n", "# only a comment\n"])
def test_load_bundle_when_empty_file_then_file_issue(write_yaml: WriteYaml, content: str) -> None:
    (issue,) = load_issues(write_yaml(content))
    assert issue.path == "<file>"
    assert "empty" in issue.value or "no document" in issue.value


def test_load_bundle_when_binary_file_then_file_issue(tmp_path: Path) -> None:
    path = tmp_path / "b.yaml"
    path.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR")
    (issue,) = load_issues(path)
    assert (issue.path, issue.value) == ("<file>", "binary data (NUL byte at offset 8)")


def test_load_bundle_when_not_utf8_then_file_issue_with_offset(tmp_path: Path) -> None:
    path = tmp_path / "b.yaml"
    path.write_bytes("name: café\n".encode("latin-1"))
    (issue,) = load_issues(path)
    assert (issue.path, issue.value, issue.expected) == ("<file>", "byte 0xe9 at offset 9", "UTF-8 text")


def test_load_bundle_when_file_too_large_then_file_issue(tmp_path: Path) -> None:
    path = tmp_path / "b.yaml"
    path.write_text("# " + "x" * (1 << 20))
    (issue,) = load_issues(path)
    assert issue.path == "<file>"
    assert "1 MiB" in issue.expected


def test_load_bundle_when_unknown_top_level_key_then_path_value_and_allowed(
    valid: dict[str, Any], write_yaml: WriteYaml
) -> None:
    valid["stop_loss"] = -0.1
    issue = issue_at(load_issues(write_yaml(valid)), "stop_loss")
    assert issue.value == "-0.1"
    assert "stoploss" in issue.expected


def test_load_bundle_when_unknown_nested_key_then_dotted_path(valid: dict[str, Any], write_yaml: WriteYaml) -> None:
    valid["validation"]["sortino"] = 2.0
    assert "trades" in issue_at(load_issues(write_yaml(valid)), "validation.sortino").expected


@pytest.mark.parametrize("pair", ["btc/usdt", "BTC-USDT", "BTC/", "BTC/USDT:", "BTC/USDT/ETH", "BTC /USDT"])
def test_load_bundle_when_bad_pair_format_then_indexed_path(
    valid: dict[str, Any], write_yaml: WriteYaml, pair: str
) -> None:
    valid["pairs"] = ["ETH/USDT", pair]
    issue = issue_at(load_issues(write_yaml(valid)), "pairs.1")
    assert issue.value == repr(pair)
    assert "BTC/USDT" in issue.expected


def test_load_bundle_when_futures_pair_then_accepted(valid: dict[str, Any]) -> None:
    valid["pairs"] = ["BTC/USDT:USDT"]
    assert validate_bundle(valid).pairs == ("BTC/USDT:USDT",)


def test_load_bundle_when_duplicate_pair_then_issue(valid: dict[str, Any], write_yaml: WriteYaml) -> None:
    valid["pairs"] = ["ETH/USDT", "ETH/USDT"]
    assert issue_at(load_issues(write_yaml(valid)), "pairs.1").value == "'ETH/USDT'"


def test_load_bundle_when_exit_without_entry_side_then_exit_path(valid: dict[str, Any], write_yaml: WriteYaml) -> None:
    valid["exit"]["short"] = "rsi < 20"
    issue = issue_at(load_issues(write_yaml(valid)), "exit.short")
    assert issue.value == "'rsi < 20'"
    assert "entry.short" in issue.expected


def test_load_bundle_when_no_entry_side_then_entry_issue(valid: dict[str, Any], write_yaml: WriteYaml) -> None:
    valid["entry"] = {}
    valid["exit"] = {}
    assert "at least one" in issue_at(load_issues(write_yaml(valid)), "entry").expected


def test_load_bundle_when_expression_invalid_then_path_names_token_and_column(
    valid: dict[str, Any], write_yaml: WriteYaml
) -> None:
    valid["entry"]["long"] = "rsi < 70 and ema_fats > 1"
    issue = issue_at(load_issues(write_yaml(valid)), "entry.long")
    assert issue.value == "'rsi < 70 and ema_fats > 1'"
    assert "unknown name 'ema_fats' at column 14" in issue.expected


def test_load_bundle_when_expression_uses_multi_output_names_then_accepted(valid: dict[str, Any]) -> None:
    valid["indicators"] = {"bb": {"fn": "BBANDS"}, "m": {"fn": "MACD"}}
    valid["entry"] = {"long": "close < bb_lower and crossed_above(m, m_signal)", "short": "m_hist < 0"}
    valid["exit"] = {"long": "close > bb_middle", "short": "m_hist > 0"}
    assert set(validate_bundle(valid).expressions) == {"entry.long", "entry.short", "exit.long", "exit.short"}


@pytest.mark.parametrize(
    ("indicators", "path", "value"),
    [
        ({"close": {"fn": "EMA", "period": 3}}, "indicators.close", "'close'"),
        ({"shift": {"fn": "EMA", "period": 3}}, "indicators.shift", "'shift'"),
        ({"Rsi": {"fn": "RSI"}}, "indicators.Rsi", "'Rsi'"),
        ({"and": {"fn": "RSI"}}, "indicators.and", "'and'"),
        ({"bb": {"fn": "BBANDS"}, "bb_lower": {"fn": "EMA", "period": 3}}, "indicators.bb_lower", "'bb_lower'"),
        ({"date": {"fn": "RSI"}}, "indicators.date", "'date'"),
    ],
)
def test_load_bundle_when_indicator_name_collides_then_issue(
    valid: dict[str, Any], write_yaml: WriteYaml, indicators: dict[str, Any], path: str, value: str
) -> None:
    valid["indicators"] = indicators
    valid["entry"] = {"long": "close > 1"}
    valid["exit"] = {}
    assert issue_at(load_issues(write_yaml(valid)), path).value == value


@pytest.mark.parametrize(
    ("mutate", "path"),
    [
        (lambda v: v.update(stoploss=0.05), "stoploss"),
        (lambda v: v.update(stoploss=-1.0), "stoploss"),
        (lambda v: v.update(version=0), "version"),
        (lambda v: v.update(id="-bad id"), "id"),
        (lambda v: v.update(name="Bad-Name"), "name"),
        (lambda v: v.update(pairs=[]), "pairs"),
        (lambda v: v.update(minimal_roi={"-5": 0.1}), "minimal_roi.-5"),
        (lambda v: v.update(minimal_roi={"abc": 0.1}), "minimal_roi.abc"),
        (lambda v: v.update(minimal_roi={"0": "x"}), "minimal_roi.0"),
        (lambda v: v.update(trailing_stop={"positive": 0.05, "offset": 0.02}), "trailing_stop.offset"),
        (lambda v: v.update(trailing_stop={"positive": 0.0, "offset": 0.02}), "trailing_stop.positive"),
        (
            lambda v: v["validation"].update(period={"start": "2024-06-30", "end": "2024-01-01"}),
            "validation.period.end",
        ),
        (lambda v: v["validation"].update(sharpe=float("nan")), "validation.sharpe"),
        (lambda v: v["validation"].update(pairs=["eth"]), "validation.pairs.0"),
        (lambda v: v["validation"].update(returns=[0.1, "x"]), "validation.returns.1"),
    ],
)
def test_validate_bundle_when_value_out_of_range_then_issue_at_path(
    valid: dict[str, Any], mutate: Callable[[dict[str, Any]], None], path: str
) -> None:
    mutate(valid)
    with pytest.raises(SpecError) as info:
        validate_bundle(valid)
    issue_at(info.value.issues, path)


def test_validate_bundle_when_optional_fields_given_then_kept(valid: dict[str, Any]) -> None:
    valid["trailing_stop"] = {"positive": 0.02, "offset": 0.03}
    valid["validation"].update(total_profit=0.2, pairs=["BTC/USDT"], returns=[0.01, -0.02], source="desk A")
    bundle = validate_bundle(valid)
    assert bundle.trailing_stop is not None
    assert not bundle.trailing_stop.only_offset_is_reached
    assert bundle.validation.returns == (0.01, -0.02)


def test_minimal_roi_when_int_keys_then_normalised_and_sorted(valid: dict[str, Any]) -> None:
    valid["minimal_roi"] = {240: 0, 0: 0.1, "60": 0.05}
    assert validate_bundle(valid).minimal_roi == {"0": 0.1, "60": 0.05, "240": 0.0}


def test_load_bundle_when_top_level_not_mapping_then_root_issue(write_yaml: WriteYaml) -> None:
    (issue,) = load_issues(write_yaml("- a\n- b\n"))
    assert (issue.path, issue.value) == ("<root>", "list ['a', 'b']")


def test_load_bundle_when_duplicate_yaml_key_then_line_of_second(write_yaml: WriteYaml) -> None:
    (issue,) = load_issues(write_yaml("stoploss: -0.1\nid: x\nstoploss: -0.9\n"))
    assert issue.path == "line 3, column 1"
    assert "duplicate key 'stoploss'" in issue.expected


def test_load_bundle_when_yaml_alias_then_rejected(write_yaml: WriteYaml) -> None:
    bomb = 'a: &a ["x", "x"]\nb: &b [*a, *a]\nc: [*b, *b]\n'
    (issue,) = load_issues(write_yaml(bomb))
    assert "aliases" in issue.expected


def test_load_bundle_when_deeply_nested_then_clean_error(tmp_path: Path, write_yaml: WriteYaml) -> None:
    path = tmp_path / "deep.json"
    path.write_text("[" * 100_000 + "]" * 100_000)
    assert load_issues(path)
    assert load_issues(write_yaml("a: " + "[" * 5000 + "]" * 5000))


def test_load_bundle_when_path_missing_then_file_issue(tmp_path: Path) -> None:
    (issue,) = load_issues(tmp_path / "nope.yaml")
    assert issue.path == "<file>"
    assert "existing" in issue.expected


def test_load_bundle_when_wrong_extension_then_file_issue(tmp_path: Path) -> None:
    path = tmp_path / "bundle.txt"
    path.write_text("id: x\n")
    (issue,) = load_issues(path)
    assert (issue.path, issue.value) == ("<file>", "'bundle.txt'")


def test_spec_error_when_many_issues_then_capped(valid: dict[str, Any]) -> None:
    valid["pairs"] = [f"bad{i}" for i in range(200)]
    with pytest.raises(SpecError) as info:
        validate_bundle(valid)
    assert len(info.value.issues) == 51
    assert info.value.issues[-1].path == "<more>"


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.binary(max_size=400))
def test_load_bundle_when_random_bytes_then_only_spec_error(tmp_path: Path, data: bytes) -> None:
    path = tmp_path / "fuzz.yaml"
    path.write_bytes(data)
    try:
        load_bundle(path)
    except SpecError as exc:
        error: SpecError | None = exc
    else:
        error = None
    assert error is None or error.issues


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(cut=st.integers(min_value=0, max_value=2000), junk=st.sampled_from(["", ":", "[", "- ", "\t", "{", "'", "&x"]))
def test_load_bundle_when_mangled_example_then_bundle_or_spec_error(tmp_path: Path, cut: int, junk: str) -> None:
    text = (EXAMPLES / "trend_ema_cross.yaml").read_text()
    cut = min(cut, len(text))
    path = tmp_path / "mangled.yaml"
    path.write_text(text[:cut] + junk + text[cut + 1 :])
    try:
        loaded: StrategyBundle | SpecError = load_bundle(path)
    except SpecError as exc:
        loaded = exc
    assert isinstance(loaded, StrategyBundle) or loaded.issues


@pytest.mark.parametrize(
    ("text", "expected"),
    [("stoploss: -0.1\nstoploss: -0.9\n", "duplicate key"), ("a: &a [1]\nb: *a\n", "aliases")],
)
def test_load_bundle_when_libyaml_unavailable_then_same_refusals(
    write_yaml: WriteYaml, monkeypatch: pytest.MonkeyPatch, text: str, expected: str
) -> None:
    monkeypatch.setattr(yaml, "__with_libyaml__", False)
    (issue,) = load_issues(write_yaml(text))
    assert issue.path.startswith("line 2")
    assert expected in issue.expected


def test_load_bundle_when_libyaml_unavailable_then_example_loads_identically(monkeypatch: pytest.MonkeyPatch) -> None:
    with_libyaml = load_bundle(EXAMPLES / "trend_ema_cross.yaml").bundle_hash
    monkeypatch.setattr(yaml, "__with_libyaml__", False)
    assert load_bundle(EXAMPLES / "trend_ema_cross.yaml").bundle_hash == with_libyaml


# -- order types ----------------------------------------------------------------------------------


def test_order_types_when_given_then_kept_and_hashed_and_absent_keeps_old_hashes(valid: dict[str, Any]) -> None:
    before = validate_bundle(valid, "t").bundle_hash
    with_types = validate_bundle({**valid, "order_types": {"stoploss_on_exchange": True, "exit": "limit"}}, "t")
    assert with_types.order_types is not None
    assert (with_types.order_types.stoploss_on_exchange, with_types.order_types.exit) == (True, "limit")
    assert with_types.order_types.exit_timeout_candles == 1
    assert with_types.bundle_hash != before
    assert validate_bundle(valid, "t").order_types is None


@pytest.mark.parametrize(("order_types", "path", "expected"), [
    ({"exit": "stop"}, "order_types.exit", "'market' or 'limit'"),
    ({"stoploss_on_exchange": "yes"}, "order_types.stoploss_on_exchange", "bool"),
    ({"exit_timeout_candles": 0}, "order_types.exit_timeout_candles", "greater than or equal to 1"),
    ({"entry": "limit"}, "order_types.entry", ""),
], ids=["exit-kind", "not-a-bool", "timeout", "unknown-key"])
def test_order_types_when_invalid_then_the_field_is_named(
        valid: dict[str, Any], write_yaml: WriteYaml, order_types: dict[str, Any], path: str, expected: str) -> None:
    issue = issue_at(load_issues(write_yaml({**valid, "order_types": order_types})), path)
    assert expected.lower() in issue.expected.lower()
