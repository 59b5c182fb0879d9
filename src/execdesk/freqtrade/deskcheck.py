"""The desk's pre-trade check for Freqtrade bots: the protocol between a bot's strategy and the desk.

A bot the desk deploys runs the strategy rendered with ``desk_check`` (see
:func:`execdesk.codegen.render.render_strategy`): before every entry its ``confirm_trade_entry`` sends one
request to the desk's check server (:mod:`execdesk.desk.bot_check`) and enters only on its approval.

The bot's ``config.json`` (mode 0600, written by :meth:`execdesk.freqtrade.bot.FreqtradeBot.prepare`) carries
the link under the key :data:`~execdesk.codegen.render.DESK_CHECK_KEY` (``execdesk_pretrade``)::

    {"port": 43121, "deployment_id": "STR-002-v1", "token": "<secret>", "timeout_s": 2.0}

The request: ``POST http://127.0.0.1:<port>/pretrade`` (the host is fixed in the strategy's code), a JSON object
``{"deployment_id", "token", "pair", "side" ("long"|"short"), "amount" (base currency), "rate"}``.
The answers (JSON):

* ``200 {"approved": true|false, "rule", "reason", "deployment_id", "numbers"}`` — the desk's verdict
  (``rule`` ``approved``, or the rule that denied it: ``deployment_exposure``, ``max_position_fraction``...);
* ``400 {"approved": false, "rule": "bad_request", "reason"}`` — not a JSON object, or a field missing or wrong;
* ``403 ... "forbidden"`` — the token, or the deployment, is not this bot's;
* ``404`` another path; ``503 ... "unavailable"`` — the desk could not decide now (its ledger held by a command
  for too long, the bot's trades unreadable); ``500`` — an error in the desk.

Anything but a 200 whose ``approved`` is ``true`` refuses the entry — also no answer within ``timeout_s``
(default :data:`DEFAULT_TIMEOUT_S`), a connection refused, or a body that is not such an object: the strategy
fails closed and logs why. The token is made with :mod:`secrets` for each start of the bot, kept only in its
``config.json`` and compared in constant time; it is never logged nor shown in a repr.
"""

from __future__ import annotations

import hmac
import json
import math
import secrets
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any, Final

from execdesk.codegen.render import DESK_CHECK_KEY, DESK_CHECK_PATH
from execdesk.errors import InvalidInput

#: How long a bot waits for the desk's answer (seconds, per socket operation of the request).
DEFAULT_TIMEOUT_S: Final = 2.0
#: A request larger than this is refused unread (a real one is about 200 bytes).
MAX_REQUEST_BYTES: Final = 4096
CONFIG_KEY: Final = DESK_CHECK_KEY
PATH: Final = DESK_CHECK_PATH
_SIDES: Final = ("long", "short")


class CheckRequestError(InvalidInput):
    """A request the check server refuses before deciding: ``status`` (400, 403, 413) and a ``rule`` for the
    answer (``bad_request``, ``forbidden``, ``too_large``); the message never holds the token."""

    def __init__(self, status: int, rule: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.rule = rule


@dataclass(frozen=True, slots=True)
class CheckLink:
    """What a bot needs to reach the desk's check, and what the check server checks its requests against:
    the loopback ``port`` of the check server, the bot's ``deployment_id``, its secret ``token`` and the
    bot's ``timeout_s``. The repr hides the token."""

    deployment_id: str
    port: int
    token: str
    timeout_s: float = DEFAULT_TIMEOUT_S

    def __post_init__(self) -> None:
        checks = [
            ("deployment_id", isinstance(self.deployment_id, str) and 0 < len(self.deployment_id) <= 200,
             "a deployment id"),
            ("port", isinstance(self.port, int) and not isinstance(self.port, bool) and 1024 <= self.port <= 65535,
             "1024..65535"),
            ("token", isinstance(self.token, str) and len(self.token) >= 32, "a secret of at least 32 characters"),
            ("timeout_s", isinstance(self.timeout_s, int | float) and not isinstance(self.timeout_s, bool)
             and 0 < self.timeout_s <= 60 and math.isfinite(self.timeout_s), "seconds in (0, 60]"),
        ]
        for name, ok, expected in checks:
            if not ok:
                shown = "<redacted>" if name == "token" else repr(getattr(self, name))
                raise InvalidInput(f"{CONFIG_KEY}.{name}: got {shown}; expected {expected}")

    @classmethod
    def generate(cls, deployment_id: str, port: int, timeout_s: float = DEFAULT_TIMEOUT_S) -> CheckLink:
        """A link with a new secret token (:func:`secrets.token_urlsafe`, 256 bits)."""
        return cls(deployment_id, port, secrets.token_urlsafe(32), float(timeout_s))

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> CheckLink | None:
        """The link a bot's Freqtrade config holds (None: the bot has no desk check)."""
        raw = config.get(CONFIG_KEY)
        if raw is None:
            return None
        if not isinstance(raw, dict):
            raise InvalidInput(f"{CONFIG_KEY}: got a {type(raw).__name__}; expected an object")
        try:
            return cls(raw["deployment_id"], raw["port"], raw["token"], raw["timeout_s"])
        except KeyError as exc:
            raise InvalidInput(f"{CONFIG_KEY}: {exc.args[0]} is missing") from None

    def as_config(self) -> dict[str, Any]:
        """The value of the bot's config key (goes into ``config.json``, 0600, only)."""
        return {"port": self.port, "deployment_id": self.deployment_id, "token": self.token,
                "timeout_s": self.timeout_s}

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}{PATH}"

    def __repr__(self) -> str:
        return f"CheckLink({self.deployment_id!r}, port={self.port}, timeout_s={self.timeout_s}, token=<redacted>)"

    __str__ = __repr__


@dataclass(frozen=True, slots=True)
class EntryRequest:
    """One entry a bot asks about: ``side`` is Freqtrade's (``long``/``short``), ``amount`` in the base
    currency, ``rate`` the price it would enter at."""

    deployment_id: str
    pair: str
    side: str
    amount: Decimal
    rate: Decimal

    def as_dict(self) -> dict[str, str]:
        return {"deployment_id": self.deployment_id, "pair": self.pair, "side": self.side,
                "amount": str(self.amount), "rate": str(self.rate)}


def parse_request(raw: bytes, link: CheckLink) -> EntryRequest:
    """The request in ``raw`` (the POST body), checked against ``link``: a JSON object (400 otherwise), the
    bot's token and deployment (403), then the fields (400: ``pair`` ``BASE/QUOTE``, ``side`` long or short,
    ``amount`` and ``rate`` positive finite numbers). :class:`CheckRequestError` naming what is wrong."""
    if len(raw) > MAX_REQUEST_BYTES:
        raise CheckRequestError(413, "too_large", f"request of {len(raw)} bytes; at most {MAX_REQUEST_BYTES}")
    try:
        body = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise CheckRequestError(400, "bad_request", f"not a JSON request: {type(exc).__name__}") from None
    if not isinstance(body, dict):
        raise CheckRequestError(400, "bad_request", f"a JSON {type(body).__name__}; expected an object")
    token = body.get("token")
    if not isinstance(token, str) or not hmac.compare_digest(token.encode(), link.token.encode()):
        raise CheckRequestError(403, "forbidden", "the token is not this bot's")
    if body.get("deployment_id") != link.deployment_id:
        raise CheckRequestError(403, "forbidden", f"deployment_id: expected {link.deployment_id!r}")
    pair, side = body.get("pair"), body.get("side")
    if not (isinstance(pair, str) and pair.count("/") == 1 and 3 <= len(pair) <= 40 and pair.isprintable()
            and " " not in pair):
        raise CheckRequestError(400, "bad_request", "pair: expected BASE/QUOTE")
    if side not in _SIDES:
        raise CheckRequestError(400, "bad_request", f"side: expected one of {', '.join(_SIDES)}")
    amount, rate = _positive(body, "amount"), _positive(body, "rate")
    return EntryRequest(link.deployment_id, pair, str(side), amount, rate)


def _positive(body: dict[str, Any], key: str) -> Decimal:
    value = body.get(key)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise CheckRequestError(400, "bad_request", f"{key}: expected a number")
    try:
        number = Decimal(repr(value)) if isinstance(value, float) else Decimal(value)
    except InvalidOperation:
        raise CheckRequestError(400, "bad_request", f"{key}: expected a number") from None
    if not (number.is_finite() and number > 0):
        raise CheckRequestError(400, "bad_request", f"{key}: expected a positive finite number")
    return number
