"""Tests of execdesk.domain.events (canonical JSON, event content) and client order ids."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from execdesk.domain.events import Event, EventKind, canonical_json
from execdesk.domain.marks import Breach
from execdesk.domain.types import IntentReason, Side, client_order_id, dec


# ---------------------------------------------------------------- canonical_json
def test_canonical_json_when_keys_unordered_then_sorted_at_every_level_and_compact() -> None:
    # Arrange
    payload = {"b": 1, "a": {"d": [3, {"z": 1, "y": 2}], "c": 2}}

    # Act
    text = canonical_json(payload)

    # Assert
    assert text == '{"a":{"c":2,"d":[3,{"y":2,"z":1}]},"b":1}'


def test_canonical_json_when_same_mapping_built_in_other_order_then_same_text() -> None:
    # Arrange
    first = {"x": 1, "y": 2}
    second = {"y": 2, "x": 1}

    # Act / Assert
    assert canonical_json(first) == canonical_json(second)


def test_canonical_json_when_decimal_then_encoded_as_exact_string() -> None:
    # Arrange
    payload = {"qty": Decimal("1.50"), "price": dec(0.1)}

    # Act
    text = canonical_json(payload)

    # Assert: trailing zeros kept, no binary float expansion (dec(0.1) is 0.1 to 12 places)
    assert text == '{"price":"0.100000000000","qty":"1.50"}'


def test_canonical_json_when_str_enum_then_encoded_as_its_value() -> None:
    # Arrange
    payload = {"side": Side.BUY, "reason": IntentReason.TRAILING_STOP, "kind": EventKind.ORDER_FILLED}

    # Act
    text = canonical_json(payload)

    # Assert
    assert text == '{"kind":"order.filled","reason":"trailing_stop","side":"BUY"}'


def test_canonical_json_when_non_ascii_text_then_compact_utf8_unescaped() -> None:
    # Act
    text = canonical_json({"note": "café", "n": None})

    # Assert
    assert text == '{"n":null,"note":"café"}'


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf")])
def test_canonical_json_when_float_not_finite_then_value_error(bad: float) -> None:
    # Act / Assert
    with pytest.raises(ValueError, match="JSON compliant"):
        canonical_json({"price": bad})


@pytest.mark.parametrize("bad", [Decimal("NaN"), Decimal("Infinity"), Decimal("-Infinity"), Decimal("sNaN")])
def test_canonical_json_when_decimal_not_finite_then_value_error(bad: Decimal) -> None:
    # Act / Assert: a NaN price must not reach the ledger as the string "NaN"
    with pytest.raises(ValueError, match="not finite"):
        canonical_json({"price": bad})


@pytest.mark.parametrize(
    ("value", "type_name"),
    [(object(), "object"), (datetime(2024, 1, 1, tzinfo=UTC), "datetime"), (b"raw", "bytes"), (1 + 2j, "complex"),
     (Breach("portfolio", "halt", 0.1, 0.1, 1.0, 1.0), "Breach")],
)
def test_canonical_json_when_unknown_type_then_type_error_naming_it(value: object, type_name: str) -> None:
    # Act / Assert: a datetime or a dataclass is not silently encoded in some format of its own
    with pytest.raises(TypeError, match=f"not JSON-safe in an event payload: {type_name}"):
        canonical_json({"x": value})


def test_canonical_json_when_tuple_or_set_then_encoded_as_list() -> None:
    # Act
    text = canonical_json({"t": ("a", "b"), "s": frozenset({"only"})})

    # Assert
    assert json.loads(text) == {"s": ["only"], "t": ["a", "b"]}


def test_canonical_json_when_equal_sets_iterate_differently_then_same_text() -> None:
    # Arrange: 0 and 8 collide in a small set's table, so insertion order decides iteration order
    first, second = {0, 8}, {8, 0}
    assert first == second

    # Act / Assert
    assert canonical_json({"s": first}) == canonical_json({"s": second})


# ---------------------------------------------------------------- Event.content
def test_event_content_when_built_then_canonical_json_of_everything_but_seq() -> None:
    # Arrange
    event = Event(1700000000, EventKind.ORDER_FILLED, {"qty": Decimal("2"), "fill_id": "f-1"}, "dep-1", seq=42)
    same_but_seq = Event(1700000000, EventKind.ORDER_FILLED, {"fill_id": "f-1", "qty": Decimal("2")}, "dep-1", seq=1)

    # Act
    content = event.content()

    # Assert
    assert content == canonical_json({"time": 1700000000, "kind": "order.filled", "deployment_id": "dep-1",
                                      "payload": {"qty": Decimal("2"), "fill_id": "f-1"}})
    assert content == same_but_seq.content()
    assert "42" not in content


def test_event_content_when_no_deployment_then_null_deployment() -> None:
    # Act
    content = Event(5, EventKind.RUN_COMPLETED).content()

    # Assert
    assert json.loads(content) == {"deployment_id": None, "kind": "run.completed", "payload": {}, "time": 5}


# ---------------------------------------------------------------- client_order_id
def test_client_order_id_when_same_inputs_then_same_id() -> None:
    # Act
    first = client_order_id("dep-1", "BTC/USDT", 1700000000, "entry_signal", "BUY")
    second = client_order_id("dep-1", "BTC/USDT", 1700000000, "entry_signal", "BUY")

    # Assert: "ed-" and 20 hex digits of sha256
    assert first == second
    assert first.startswith("ed-")
    assert len(first) == 23
    int(first[3:], 16)


def test_client_order_id_when_any_input_differs_then_distinct_ids() -> None:
    # Arrange
    base = ("dep-1", "BTC/USDT", 1700000000, "entry_signal", "BUY")
    variants = [
        base,
        ("dep-2", *base[1:]),
        (base[0], "ETH/USDT", *base[2:]),
        (*base[:2], 1700003600, *base[3:]),
        (*base[:3], "stoploss", base[4]),
        (*base[:4], "SELL"),
    ]

    # Act
    ids = {client_order_id(*v) for v in variants}

    # Assert
    assert len(ids) == len(variants)

