"""The desk's pre-trade check for Freqtrade bots: the request protocol. Its server (the loopback endpoint and the
decision on a real ledger) is tested in ``tests/desk/test_bot_check.py``, the strategy's side of the protocol in
``test_deskcheck_client.py``, a real bot refused by the desk in ``test_fleet.py``."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pytest

from execdesk.errors import InvalidInput
from execdesk.freqtrade.deskcheck import CheckLink, CheckRequestError, EntryRequest, parse_request

DEP = "STR-900-v1"


def _link(port: int = 50_000) -> CheckLink:
    return CheckLink.generate(DEP, port, timeout_s=2.0)


def _body(link: CheckLink, **overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"deployment_id": link.deployment_id, "token": link.token, "pair": "SOL/USDT",
                            "side": "long", "amount": 2.0, "rate": 100.0}
    body.update(overrides)
    return body


def _raw(body: Any) -> bytes:
    return json.dumps(body).encode()


# -- the request ------------------------------------------------------------------------------------------------


def test_parse_request_when_well_formed_then_entry_of_this_bot() -> None:
    link = _link()
    entry = parse_request(_raw(_body(link)), link)
    assert entry == EntryRequest(DEP, "SOL/USDT", "long", Decimal("2.0"), Decimal("100.0"))


@pytest.mark.parametrize(
    ("raw", "status", "match"),
    [
        (b"{not json", 400, "not a JSON request"),
        (b"[1, 2]", 400, "a JSON list; expected an object"),
        (b"x" * 5000, 413, "at most 4096"),
    ],
)
def test_parse_request_when_malformed_then_clear_error(raw: bytes, status: int, match: str) -> None:
    with pytest.raises(CheckRequestError, match=match) as caught:
        parse_request(raw, _link())
    assert caught.value.status == status


@pytest.mark.parametrize(
    ("overrides", "status", "match"),
    [
        ({"token": "x" * 43}, 403, "token is not this bot's"),
        ({"token": None}, 403, "token is not this bot's"),
        ({"deployment_id": "STR-001-v1"}, 403, "deployment_id"),
        ({"pair": "SOLUSDT"}, 400, "pair: expected BASE/QUOTE"),
        ({"side": "up"}, 400, "side: expected one of long, short"),
        ({"amount": -1}, 400, "amount: expected a positive finite number"),
        ({"amount": "2"}, 400, "amount: expected a number"),
        ({"rate": True}, 400, "rate: expected a number"),
        ({"rate": float("inf")}, 400, "rate: expected a positive finite number"),
    ],
)
def test_parse_request_when_token_or_field_wrong_then_refused_naming_it(overrides: dict[str, Any], status: int,
                                                                       match: str) -> None:
    link = _link()
    with pytest.raises(CheckRequestError, match=match) as caught:
        parse_request(_raw(_body(link, **overrides)), link)
    assert caught.value.status == status
    assert link.token not in str(caught.value)


def test_check_link_when_shown_or_invalid_then_token_never_appears() -> None:
    link = _link()
    assert link.token not in repr(link)
    assert link.token not in str(link)
    assert CheckLink.from_config({"execdesk_pretrade": link.as_config()}) == link
    assert CheckLink.from_config({}) is None
    with pytest.raises(InvalidInput, match=r"execdesk_pretrade\.port"):
        CheckLink(DEP, 80, link.token)
    with pytest.raises(InvalidInput, match="<redacted>") as caught:
        CheckLink(DEP, 50_000, "short")
    assert "short" not in str(caught.value)


