"""Hostile and malformed specs through intake and the generator: a SpecError or a safe strategy,
never a traceback, and never a generated name outside the whitelist."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from execdesk.codegen.audit import audit_source
from execdesk.codegen.render import render_strategy
from execdesk.errors import SpecError
from execdesk.strategy import StrategyBundle, load_bundle, validate_bundle
from tests.codegen.conftest import BASE

JUNK = st.one_of(
    st.none(), st.booleans(), st.integers(-10**30, 10**30), st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from(["__import__('os')", "().__class__.__bases__", "open('/etc/passwd')", "x.y", "a[0]", "'s'",
                     "lambda: 1", "[i for i in x]", "f(x=1)", "2**99999", "(" * 5000 + "close" + ")" * 5000,
                     "close > 1; import os", "exec('1')", "EMA", "-0.05", "1h", "BTC/USDT", "\x00", "é"]),
    st.text(max_size=40), st.lists(st.integers(), max_size=3), st.dictionaries(st.text(max_size=5), st.integers(),
                                                                               max_size=3),
)


def _paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix]
    if isinstance(node, dict):
        for k, v in node.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            out += _paths(v, (*prefix, i))
    return out


def _mutate(spec: dict[str, Any], path: tuple[Any, ...], value: Any, drop: bool) -> dict[str, Any]:
    spec = copy.deepcopy(spec)
    if not path:
        return value if isinstance(value, dict) else spec
    parent = spec
    for key in path[:-1]:
        parent = parent[key]
    if drop and isinstance(parent, dict):
        parent.pop(path[-1])
    else:
        parent[path[-1]] = value
    return spec


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), drop=st.booleans())
def test_validate_and_render_when_a_field_is_replaced_by_junk_then_spec_error_or_a_whitelisted_strategy(
        data: st.DataObject, drop: bool) -> None:
    path = data.draw(st.sampled_from(_paths(BASE)))
    spec = _mutate(BASE, path, data.draw(JUNK), drop)
    try:
        bundle = validate_bundle(spec)
    except SpecError as exc:
        issues = exc.issues
        assert issues
        return
    generated = render_strategy(bundle)
    assert audit_source(generated.source, generated.allowed) == []


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(value=JUNK, key=st.sampled_from(["entry", "exit", "indicators", "stoploss", "pairs", "validation", "name"]))
def test_load_bundle_when_file_holds_hostile_values_then_only_spec_error(tmp_path: Path, value: Any, key: str) -> None:
    spec = copy.deepcopy(BASE)
    spec[key] = value
    path = tmp_path / "hostile.yaml"
    try:
        text = yaml.safe_dump(spec, allow_unicode=True)
    except yaml.YAMLError:
        return
    path.write_text(text, encoding="utf-8")
    try:
        loaded: StrategyBundle | SpecError = load_bundle(path)
    except SpecError as exc:
        loaded = exc
    assert isinstance(loaded, StrategyBundle) or loaded.issues


def test_load_bundle_when_ten_megabyte_expression_then_spec_error_quickly(tmp_path: Path) -> None:
    spec = copy.deepcopy(BASE)
    spec["entry"] = {"long": "close > 1 and " * 800_000 + "close > 2"}
    path = tmp_path / "big.yaml"
    path.write_text(yaml.safe_dump(spec))
    with pytest.raises(SpecError) as info:
        load_bundle(path)
    assert info.value.issues
