"""The Freqtrade-bot venue: deploy a generated strategy as a dry-run ``freqtrade trade`` bot.

One bot per deployment, each in its own folder (Freqtrade's unit of scale)::

    <folder>/config.json                         Freqtrade config, mode 0600 (holds the API login)
    <folder>/user_data/strategies/<file>.py      the generated strategy, alone
    <folder>/tradesv3.dryrun.sqlite              the bot's own database (one per bot)
    <folder>/bot.log                             the bot's stdout and stderr
    <folder>/docker-compose.yml, CHECKLIST.md    for a real deployment (see docs/VENUES.md)

:meth:`FreqtradeBot.prepare` writes the folder, :meth:`FreqtradeBot.start` runs the bot as a
supervised subprocess (its own process group) and waits until ``GET /api/v1/ping`` answers,
:attr:`FreqtradeBot.api` (:class:`BotApi`) drives it over Freqtrade's REST API, and
:meth:`FreqtradeBot.stop` stops it (``POST /stop``, one SIGTERM, SIGKILL after a grace period).

Offline (the default) the subprocess is ``python -m execdesk.freqtrade.bot_harness``: Freqtrade's
own ``trade`` command behind the offline exchange seam, fed by candles from a datadir replayed on
the wall clock. With ``offline=False`` it is plain ``freqtrade trade`` against the real exchange
named in the config (not exercised by the tests: no exchange is reachable here).

How it maps to the :class:`~execdesk.venues.base.Venue` protocol: it is a deployment target, not
an order-level venue. The strategy inside the bot decides and places its own orders, so ``submit``
/ ``cancel`` / ``fills_since`` are deliberately not offered; the read side is —
:meth:`FreqtradeBot.balances` (``/balance``) and :meth:`FreqtradeBot.positions` (``/status``) —
and the desk's controls are the bot's: stop entries, force-exit all, stop.

This module never imports Freqtrade (it costs ~2 s and ~280 MB); the REST client is plain
``urllib``. The API credentials are generated with :mod:`secrets`, written only to
``config.json`` (0600), and never logged, put in a repr or in an exception message.

A bot prepared with a ``desk_check`` (:class:`~execdesk.freqtrade.deskcheck.CheckLink`: what
:func:`execdesk.freqtrade.fleet.start_bot` gives every desk deployment's bot) has that link in its
``config.json`` (key ``execdesk_pretrade``, with its secret token) and should run the strategy rendered
with ``desk_check=True``: its entries then wait for the desk's pre-trade check (see
:mod:`execdesk.freqtrade.deskcheck`).
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from importlib import resources
from pathlib import Path
from typing import Any, Final, Literal

import jinja2

import execdesk
from execdesk.codegen.render import GeneratedStrategy, StakeSizing, render_strategy
from execdesk.errors import ExecdeskError, InvalidInput, TemporaryError
from execdesk.freqtrade.deskcheck import CONFIG_KEY as DESK_CHECK_KEY
from execdesk.freqtrade.deskcheck import CheckLink
from execdesk.freqtrade.runner import TESTED_FREQTRADE_VERSION
from execdesk.strategy import StrategyBundle, load_bundle

HARNESS_MODULE: Final = "execdesk.freqtrade.bot_harness"
#: The Docker image the generated docker-compose.yml pins (the version the desk was tested with).
FREQTRADE_IMAGE: Final = f"freqtradeorg/freqtrade:{TESTED_FREQTRADE_VERSION}"
TEMPLATE_VERSION: Final = 1
DB_FILE: Final = "tradesv3.dryrun.sqlite"
LOG_FILE: Final = "bot.log"
PID_FILE: Final = "bot.pid"  # the running bot's pid, for the commands that did not start it
_LOG_TAIL_LINES: Final = 30


# -- errors --------------------------------------------------------------------------------------


class BotError(ExecdeskError):
    """The bot failed: it did not start, died, or answered an API call with a server error."""


class BotStartError(BotError):
    """The bot did not come up; the message ends with the tail of its log file."""


class BotUnavailable(TemporaryError):
    """The bot's API could not be reached (connection refused, reset or timed out): retryable."""


class BotRequestRejected(InvalidInput):
    """The bot refused the request: a 4xx answer (bad login, bad payload, disabled feature) or
    Freqtrade's 502 "Error querying ..." for an RPC it declined (e.g. ``forceenter`` while entries
    are stopped, an unknown trade id). Retrying the same call will not help; ``status`` is the code."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


# -- settings ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class BotSettings:
    """Settings of one bot; the Freqtrade config keys they set are named.

    ``stake_amount`` (100.0) -> ``stake_amount``, a number or ``"unlimited"``; ``max_open_trades``
    (3); ``dry_run_wallet`` (1000.0); ``tradable_balance_ratio`` (0.99) — the risk manager's
    numbers for this deployment. ``exchange`` ("binance") -> ``exchange.name``. ``api_port`` (0:
    pick a free loopback port at prepare time; else 1024..65535) -> ``api_server.listen_port``.
    ``process_throttle_secs`` (5) -> ``internals.process_throttle_secs``.
    Offline replay only: ``fee`` (0.001) and ``min_cost`` (1.0) of the served markets,
    ``history_candles`` (None: half the file) — the candle of the datadir that is "now" at start.
    Supervision: ``start_timeout_s`` (90), ``stop_timeout_s`` (30: grace after the SIGTERM),
    ``request_timeout_s`` (10, per REST call).
    """

    stake_amount: float | Literal["unlimited"] = 100.0
    max_open_trades: int = 3
    dry_run_wallet: float = 1000.0
    tradable_balance_ratio: float = 0.99
    exchange: str = "binance"
    api_port: int = 0
    process_throttle_secs: int = 5
    fee: float = 0.001
    min_cost: float = 1.0
    history_candles: int | None = None
    start_timeout_s: float = 90.0
    stop_timeout_s: float = 30.0
    request_timeout_s: float = 10.0

    def __post_init__(self) -> None:
        if self.stake_amount != "unlimited" and not _positive(self.stake_amount):
            raise InvalidInput(f"bot.stake_amount: got {self.stake_amount!r}; expected a number > 0 or 'unlimited'")
        checks: list[tuple[str, bool, str]] = [
            ("max_open_trades", _int(self.max_open_trades) and self.max_open_trades >= 1, "an integer >= 1"),
            ("dry_run_wallet", _positive(self.dry_run_wallet), "a number > 0"),
            ("tradable_balance_ratio", _positive(self.tradable_balance_ratio) and self.tradable_balance_ratio <= 1,
             "a ratio in (0, 1]"),
            ("exchange", isinstance(self.exchange, str) and bool(re.fullmatch(r"[a-z][a-z0-9_]*", self.exchange)),
             "a lower-case ccxt exchange id"),
            ("api_port", _int(self.api_port) and (self.api_port == 0 or 1024 <= self.api_port <= 65535),
             "0 (pick a free port) or 1024..65535"),
            ("process_throttle_secs", _int(self.process_throttle_secs) and self.process_throttle_secs >= 1,
             "an integer >= 1"),
            ("fee", _number(self.fee) and 0 <= self.fee < 0.1, "a ratio in [0, 0.1)"),
            ("min_cost", _positive(self.min_cost), "a number > 0"),
            ("history_candles",
             self.history_candles is None or (_int(self.history_candles) and self.history_candles >= 1),
             "null or an integer >= 1"),
            ("start_timeout_s", _positive(self.start_timeout_s), "seconds > 0"),
            ("stop_timeout_s", _positive(self.stop_timeout_s), "seconds > 0"),
            ("request_timeout_s", _positive(self.request_timeout_s), "seconds > 0"),
        ]
        for name, ok, expected in checks:
            if not ok:
                raise InvalidInput(f"bot.{name}: got {getattr(self, name)!r}; expected {expected}")


def _number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and value == value  # not NaN


def _positive(value: object) -> bool:
    return _number(value) and 0 < float(value) < float("inf")  # type: ignore[arg-type]


def _int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


class _Credentials:
    """The bot's API login. Never shown: repr and str are redacted."""

    __slots__ = ("jwt_secret_key", "password", "username")

    def __init__(self, username: str, password: str, jwt_secret_key: str) -> None:
        self.username = username
        self.password = password
        self.jwt_secret_key = jwt_secret_key

    @classmethod
    def generate(cls) -> _Credentials:
        return cls(f"execdesk-{secrets.token_hex(4)}", secrets.token_urlsafe(24), secrets.token_hex(32))

    def authorization(self) -> str:
        token = base64.b64encode(f"{self.username}:{self.password}".encode()).decode("ascii")
        return f"Basic {token}"

    def __repr__(self) -> str:
        return "<credentials redacted>"

    __str__ = __repr__


# -- REST client ---------------------------------------------------------------------------------


class BotApi:
    """Freqtrade's REST API (``/api/v1``) over plain HTTP with basic auth; every call returns the
    parsed JSON. Connection failures raise :class:`BotUnavailable` (retryable), refusals
    :class:`BotRequestRejected`, anything else :class:`BotError` — messages carry the method, path,
    status and Freqtrade's ``detail``, never the credentials."""

    def __init__(self, base_url: str, credentials: _Credentials, timeout_s: float = 10.0) -> None:
        self.base_url = base_url.rstrip("/")
        self._credentials = credentials
        self.timeout_s = timeout_s

    def __repr__(self) -> str:
        return f"BotApi({self.base_url!r})"

    def request(self, method: str, path: str, payload: Mapping[str, Any] | None = None, *, auth: bool = True) -> Any:
        """One call: ``method`` ``/api/v1/<path>`` with an optional JSON body."""
        url = f"{self.base_url}/api/v1/{path.lstrip('/')}"
        body = None if payload is None else json.dumps(payload).encode("utf-8")
        request = urllib.request.Request(url, data=body, method=method)  # noqa: S310 — http://127.0.0.1 built here
        request.add_header("Accept", "application/json")
        if body is not None:
            request.add_header("Content-Type", "application/json")
        if auth:
            request.add_header("Authorization", self._credentials.authorization())
        where = f"{method} /api/v1/{path.lstrip('/')}"
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as response:  # noqa: S310
                raw = response.read()
        except urllib.error.HTTPError as exc:
            detail = _detail(exc.read())
            message = f"Freqtrade bot at {self.base_url}: {where} answered {exc.code}: {detail}"
            # 502 is how Freqtrade answers an RPC refusal ("trader is not running", "invalid pair")
            if 400 <= exc.code < 500 or (exc.code == 502 and "Error querying" in detail):
                raise BotRequestRejected(message, exc.code) from None
            raise BotError(message) from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise BotUnavailable(f"Freqtrade bot at {self.base_url}: {where} failed: {reason}") from None
        try:
            return json.loads(raw) if raw else None
        except ValueError:
            raise BotError(f"Freqtrade bot at {self.base_url}: {where} answered non-JSON: {raw[:200]!r}") from None

    def ping(self) -> dict[str, Any]:
        """``GET /ping`` (no auth): ``{"status": "pong"}`` while the API serves."""
        return dict(self.request("GET", "ping", auth=False))

    def status(self) -> list[dict[str, Any]]:
        """``GET /status``: the open trades (each with ``trade_id``, ``pair``, ``amount``, ``is_short``...)."""
        return list(self.request("GET", "status"))

    def profit(self) -> dict[str, Any]:
        """``GET /profit``: closed and open profit, trade counts, win rate, drawdown."""
        return dict(self.request("GET", "profit"))

    def balance(self) -> dict[str, Any]:
        """``GET /balance``: ``currencies`` (``currency``, ``free``, ``used``, ``balance``...), ``total``..."""
        return dict(self.request("GET", "balance"))

    def count(self) -> dict[str, Any]:
        """``GET /count``: open trades against ``max_open_trades``."""
        return dict(self.request("GET", "count"))

    def show_config(self) -> dict[str, Any]:
        """``GET /show_config``: the running config as Freqtrade reports it (no secrets), incl. ``state``."""
        return dict(self.request("GET", "show_config"))

    def trades(self, limit: int = 500) -> dict[str, Any]:
        """``GET /trades``: closed and open trades, newest first."""
        return dict(self.request("GET", f"trades?limit={int(limit)}"))

    def forceenter(self, pair: str, side: Literal["long", "short"] = "long",
                   stake_amount: float | None = None) -> dict[str, Any]:
        """``POST /forceenter`` (needs ``force_entry_enable``): open a trade now; the new trade, or
        ``{"status": "Error entering ..."}`` when Freqtrade declined."""
        payload: dict[str, Any] = {"pair": pair, "side": side}
        if stake_amount is not None:
            payload["stakeamount"] = float(stake_amount)
        return dict(self.request("POST", "forceenter", payload))

    def forceexit(self, tradeid: int | Literal["all"] = "all") -> dict[str, Any]:
        """``POST /forceexit``: close one trade, or every open trade with ``"all"``."""
        return dict(self.request("POST", "forceexit", {"tradeid": str(tradeid)}))

    def stopentry(self) -> dict[str, Any]:
        """``POST /stopentry``: no new entries; open trades are still managed (exits, stops)."""
        return dict(self.request("POST", "stopentry"))

    def start(self) -> dict[str, Any]:
        """``POST /start``: back to running after ``stop``/``stopentry``."""
        return dict(self.request("POST", "start"))

    def stop(self) -> dict[str, Any]:
        """``POST /stop``: the bot stops trading (the process and its API stay up)."""
        return dict(self.request("POST", "stop"))


def _detail(raw: bytes) -> str:
    try:
        value = json.loads(raw)
    except ValueError:
        return raw[:200].decode("utf-8", errors="replace") or "(no body)"
    if isinstance(value, dict) and "detail" in value:
        return str(value["detail"])[:300]
    return str(value)[:300]


# -- the bot -------------------------------------------------------------------------------------


StrategySource = StrategyBundle | GeneratedStrategy | Path | str


class FreqtradeBot:
    """One Freqtrade bot in its folder: prepare, start, drive (:attr:`api`), stop.

    Build with :meth:`prepare`. Also a context manager (``with bot: ...`` starts and always
    stops). ``name`` and ``embedded`` follow the :class:`~execdesk.venues.base.Venue` protocol's
    fields; see the module docstring for which of its calls this maps.
    """

    embedded = False

    def __init__(
        self,
        folder: Path,
        class_name: str,
        pairs: Sequence[str],
        timeframe: str,
        settings: BotSettings,
        credentials: _Credentials,
        *,
        datadir: Path | None,
        offline: bool,
        desk_check: CheckLink | None = None,
    ) -> None:
        self.folder = folder
        self.class_name = class_name
        self.pairs = tuple(pairs)
        self.timeframe = timeframe
        self.settings = settings
        self.datadir = datadir
        self.offline = offline
        self.desk_check = desk_check  # the desk's pre-trade check this bot's entries wait for (None: none)
        self.name = f"freqtrade:{class_name}"
        self.api = BotApi(f"http://127.0.0.1:{settings.api_port}", credentials, settings.request_timeout_s)
        self._process: subprocess.Popen[bytes] | None = None
        self._adopted: int | None = None  # a running bot's pid, started by another process (see open)
        self.start_seconds: float | None = None

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"FreqtradeBot({self.class_name!r}, folder={str(self.folder)!r}, port={self.port}, {state})"

    # paths

    @property
    def config_file(self) -> Path:
        return self.folder / "config.json"

    @property
    def log_file(self) -> Path:
        return self.folder / LOG_FILE

    @property
    def user_data_dir(self) -> Path:
        return self.folder / "user_data"

    @property
    def db_url(self) -> str:
        return f"sqlite:///{(self.folder / DB_FILE).resolve()}"

    @property
    def port(self) -> int:
        return self.settings.api_port

    @property
    def pid(self) -> int | None:
        """The bot process's id (also its process group id): started by this object, or taken up by
        :meth:`open` from ``bot.pid``."""
        return self._process.pid if self._process is not None else self._adopted

    @property
    def running(self) -> bool:
        if self._process is not None:
            return self._process.poll() is None
        return self._adopted is not None and _pid_alive(self._adopted)

    # -- prepare ---------------------------------------------------------------------------------

    @classmethod
    def prepare(
        cls,
        source: StrategySource,
        out_dir: Path | str,
        settings: BotSettings | None = None,
        *,
        pairs: Sequence[str] | None = None,
        timeframe: str | None = None,
        datadir: Path | str | None = None,
        class_name: str | None = None,
        sizing: StakeSizing | None = None,
        offline: bool = True,
        desk_check: CheckLink | None = None,
    ) -> FreqtradeBot:
        """Write the bot's folder and return the (not yet started) bot.

        ``source``: a strategy bundle (object, ``.yaml`` file or bundle folder) — rendered with
        :func:`~execdesk.codegen.render.render_strategy` and ``sizing`` — or an already rendered
        :class:`~execdesk.codegen.render.GeneratedStrategy`, or a generated ``.py`` file (then
        ``class_name``, ``pairs`` and ``timeframe`` are required). The strategy is expected to have
        passed the codegen review and verification already (the execution lead's gate).
        ``pairs``/``timeframe`` default to the bundle's. ``datadir``: the Freqtrade datadir whose
        candles the offline bot replays (required offline). ``offline=False`` prepares a bot that
        :meth:`start` runs as plain ``freqtrade trade`` against the real exchange. ``desk_check``:
        the desk's pre-trade check, written into ``config.json`` (the strategy must be one rendered
        with ``desk_check=True`` for it to be asked).
        An existing folder is reused: its files are replaced (with new API credentials), its
        database is kept, so Freqtrade resumes the dry-run trades it holds.
        Raises :class:`~execdesk.errors.InvalidInput` naming what is wrong.
        """
        settings = settings or BotSettings()
        generated, strategy_file = _resolve_source(source, sizing, class_name)
        name = generated.class_name if generated is not None else str(class_name)
        pairs = tuple(pairs or (generated.pairs if generated is not None else ()))
        timeframe = timeframe or (generated.timeframe if generated is not None else None)
        if not pairs or not timeframe:
            raise InvalidInput("prepare: pairs and timeframe are required for a strategy given as a .py file")
        quotes = sorted({p.split("/")[-1].split(":")[0] for p in pairs})
        if len(quotes) != 1 or any(":" in p or p.count("/") != 1 for p in pairs):
            raise InvalidInput(f"prepare: pairs {list(pairs)} must be spot pairs BASE/QUOTE of one quote currency")
        data = Path(datadir).resolve() if datadir is not None else None
        if offline and (data is None or not data.is_dir()):
            raise InvalidInput(f"prepare: datadir {datadir} is not a folder; an offline bot replays its candles")
        if settings.api_port == 0:
            settings = _with_port(settings, free_loopback_port())
        folder = Path(out_dir).resolve()
        strategies = folder / "user_data" / "strategies"
        strategies.mkdir(parents=True, exist_ok=True)
        for sub in ("data", "logs"):
            (folder / "user_data" / sub).mkdir(exist_ok=True)
        if generated is not None:
            filename = generated.filename
            (strategies / filename).write_text(generated.source, encoding="utf-8")
        else:
            assert strategy_file is not None  # _resolve_source returns one of the two
            filename = strategy_file.name
            (strategies / filename).write_bytes(strategy_file.read_bytes())
        bot = cls(folder, name, pairs, timeframe, settings, _Credentials.generate(), datadir=data, offline=offline,
                  desk_check=desk_check)
        _write_private(bot.config_file, json.dumps(bot.build_config(quotes[0]), indent=2) + "\n")
        context = bot._template_context(quotes[0], filename)
        env = _templates()
        (folder / "docker-compose.yml").write_text(env.get_template("docker-compose.yml.j2").render(context),
                                                   encoding="utf-8")
        (folder / "CHECKLIST.md").write_text(env.get_template("CHECKLIST.md.j2").render(context), encoding="utf-8")
        return bot

    @classmethod
    def open(cls, folder: Path | str) -> FreqtradeBot:
        """The bot a folder :meth:`prepare` wrote, as it was prepared (its config, API login and, offline, its
        replay's datadir); a bot this folder's ``bot.pid`` names that is still alive is taken up (:attr:`pid`,
        :meth:`stop`), so a bot started by one command can be driven and stopped by another."""
        folder = Path(folder).resolve()
        try:
            config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise InvalidInput(f"{folder}: no prepared Freqtrade bot here (config.json: {exc})") from None
        api = config["api_server"]
        args_file = folder / "harness-args.json"
        harness = json.loads(args_file.read_text(encoding="utf-8")) if args_file.is_file() else None
        settings = BotSettings(stake_amount=config["stake_amount"], max_open_trades=int(config["max_open_trades"]),
                               dry_run_wallet=float(config["dry_run_wallet"]),
                               tradable_balance_ratio=float(config["tradable_balance_ratio"]),
                               exchange=str(config["exchange"]["name"]), api_port=int(api["listen_port"]))
        bot = cls(folder, str(config["strategy"]), config["exchange"]["pair_whitelist"], str(config["timeframe"]),
                  settings, _Credentials(str(api["username"]), str(api["password"]), str(api["jwt_secret_key"])),
                  datadir=Path(harness["datadir"]) if harness else None, offline=harness is not None,
                  desk_check=CheckLink.from_config(config))
        bot._adopted = _alive_pid(folder / PID_FILE)
        return bot

    def build_config(self, stake_currency: str) -> dict[str, Any]:
        """The Freqtrade config of this bot (dry run, API on loopback with the generated login)."""
        s = self.settings
        credentials = self.api._credentials
        desk = {DESK_CHECK_KEY: self.desk_check.as_config()} if self.desk_check is not None else {}
        return {
            "bot_name": f"execdesk-{self.class_name}",
            "strategy": self.class_name,
            "timeframe": self.timeframe,
            "stake_currency": stake_currency,
            "stake_amount": s.stake_amount,
            "max_open_trades": s.max_open_trades,
            "tradable_balance_ratio": s.tradable_balance_ratio,
            "dry_run": True,
            "dry_run_wallet": s.dry_run_wallet,
            "cancel_open_orders_on_exit": False,
            "trading_mode": "spot",
            "margin_mode": "",
            "unfilledtimeout": {"entry": 10, "exit": 10, "exit_timeout_count": 0, "unit": "minutes"},
            # "other": cross the spread, so dry-run limit orders fill at once against the (replayed) book
            "entry_pricing": {"price_side": "other", "use_order_book": False, "price_last_balance": 0.0,
                              "check_depth_of_market": {"enabled": False, "bids_to_ask_delta": 1}},
            "exit_pricing": {"price_side": "other", "use_order_book": False},
            "exchange": {"name": s.exchange, "key": "", "secret": "", "enable_ws": False,
                         "ccxt_config": {}, "ccxt_async_config": {},
                         "pair_whitelist": list(self.pairs), "pair_blacklist": []},
            "pairlists": [{"method": "StaticPairList"}],
            "api_server": {
                "enabled": True,
                "listen_ip_address": "127.0.0.1",
                "listen_port": s.api_port,
                "verbosity": "error",
                "enable_openapi": False,
                "jwt_secret_key": credentials.jwt_secret_key,
                "CORS_origins": [],
                "username": credentials.username,
                "password": credentials.password,
            },
            "initial_state": "running",
            "force_entry_enable": True,
            "db_url": self.db_url,
            "user_data_dir": str(self.user_data_dir),
            "dataformat_ohlcv": "feather",
            "internals": {"process_throttle_secs": s.process_throttle_secs},
            **desk,
        }

    def _template_context(self, stake_currency: str, strategy_file: str) -> dict[str, Any]:
        service = re.sub(r"[^a-z0-9]+", "-", f"ft-{self.class_name}".lower()).strip("-")
        s = self.settings
        return {
            "template_version": TEMPLATE_VERSION,
            "class_name": self.class_name,
            "strategy_file": strategy_file,
            "pairs": list(self.pairs),
            "timeframe": self.timeframe,
            "exchange": s.exchange,
            "image": FREQTRADE_IMAGE,
            "freqtrade_version": TESTED_FREQTRADE_VERSION,
            "service": service,
            "host_port": s.api_port,
            "api_port": s.api_port,
            "db_file": "tradesv3.sqlite",
            "stake_currency": stake_currency,
            "stake_amount": s.stake_amount,
            "max_open_trades": s.max_open_trades,
            "tradable_balance_ratio": s.tradable_balance_ratio,
            "dry_run_wallet": s.dry_run_wallet,
            "desk_check_port": self.desk_check.port if self.desk_check is not None else None,
        }

    # -- process supervision ---------------------------------------------------------------------

    def command(self) -> list[str]:
        """The argv :meth:`start` runs (no secrets in it: they stay in config.json)."""
        if not self.offline:
            return [sys.executable, "-m", "freqtrade", "trade", "--config", str(self.config_file),
                    "--userdir", str(self.user_data_dir), "--strategy", self.class_name, "--db-url", self.db_url]
        args = {
            "config_file": str(self.config_file),
            "user_data_dir": str(self.user_data_dir),
            "strategy": self.class_name,
            "db_url": self.db_url,
            "datadir": str(self.datadir),
            "timeframe": self.timeframe,
            "pairs": list(self.pairs),
            "history_candles": self.settings.history_candles,
            "fee": self.settings.fee,
            "min_cost": self.settings.min_cost,
        }
        args_file = self.folder / "harness-args.json"
        args_file.write_text(json.dumps(args, indent=2) + "\n", encoding="utf-8")
        return [sys.executable, "-m", HARNESS_MODULE, f"@{args_file}"]

    def start(self) -> FreqtradeBot:
        """Start the bot and wait until ``/ping`` answers (at most ``start_timeout_s``).

        Raises :class:`BotStartError` with the log's tail when the process exits first or the
        API does not answer in time (the process is then stopped).
        """
        if self.running:
            return self
        started = time.monotonic()
        fd = os.open(self.log_file, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        with os.fdopen(fd, "ab") as log:
            self._process = subprocess.Popen(  # noqa: S603 — fixed argv: this interpreter and our module
                self.command(), cwd=self.folder,
                env=bot_environment(os.environ, self.settings.exchange, real=not self.offline),
                stdin=subprocess.DEVNULL,
                stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            )
        deadline = started + self.settings.start_timeout_s
        while True:
            code = self._process.poll()
            if code is not None:
                raise BotStartError(f"Freqtrade bot {self.class_name} exited with code {code} before its API "
                                    f"answered; log {self.log_file} ends:\n{self.log_tail()}")
            try:
                if self.api.ping().get("status") == "pong":
                    break
            except (BotUnavailable, BotError):
                pass
            if time.monotonic() > deadline:
                self._terminate()
                raise BotStartError(f"Freqtrade bot {self.class_name} did not answer /ping within "
                                    f"{self.settings.start_timeout_s:g} s (stopped); log {self.log_file} ends:\n"
                                    f"{self.log_tail()}")
            time.sleep(0.1)
        self.start_seconds = time.monotonic() - started
        (self.folder / PID_FILE).write_text(f"{self._process.pid}\n", encoding="utf-8")
        return self

    def stop(self) -> int | None:
        """Stop the bot: ``POST /stop`` (best effort), then exactly one SIGTERM to its process group,
        wait ``stop_timeout_s``, then SIGKILL. Idempotent; returns the exit code (None if never
        started)."""
        process = self._process
        if process is None:
            return self._stop_adopted()
        if process.poll() is None:
            with contextlib.suppress(BotError, BotUnavailable, InvalidInput):
                self.api.stop()  # best effort: the signal below stops it anyway
        code = self._terminate()
        (self.folder / PID_FILE).unlink(missing_ok=True)
        return code

    def _stop_adopted(self) -> int | None:
        """Stop a bot another process started (not our child: no exit code to collect)."""
        pid = self._adopted
        if pid is None or not _pid_alive(pid):
            (self.folder / PID_FILE).unlink(missing_ok=True)
            return None
        with contextlib.suppress(BotError, BotUnavailable, InvalidInput):
            self.api.stop()
        _signal_group(pid, signal.SIGTERM)  # exactly one SIGTERM (see _terminate)
        deadline = time.monotonic() + self.settings.stop_timeout_s
        while _pid_alive(pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        if _pid_alive(pid):
            _signal_group(pid, signal.SIGKILL)
        self._adopted = None
        (self.folder / PID_FILE).unlink(missing_ok=True)
        return None

    def _terminate(self) -> int | None:
        process = self._process
        if process is None:
            return None
        if process.poll() is None:
            # Exactly one signal: a second one during Freqtrade's shutdown can leave it hung.
            _signal_group(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=self.settings.stop_timeout_s)
            except subprocess.TimeoutExpired:
                _signal_group(process.pid, signal.SIGKILL)
                process.wait(timeout=10)
        return process.returncode

    def __enter__(self) -> FreqtradeBot:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def log_tail(self, lines: int = _LOG_TAIL_LINES) -> str:
        """The last ``lines`` lines of the bot's log file."""
        try:
            text = self.log_file.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return "(no log file)"
        return "\n".join(text.rstrip().splitlines()[-lines:])

    # -- the Venue read side ---------------------------------------------------------------------

    def balances(self) -> dict[str, Decimal]:
        """Balance per currency as the bot's wallet holds it (``/balance``; dry-run: simulated)."""
        return {str(c["currency"]): _dec(c.get("balance", 0)) for c in self.api.balance().get("currencies", [])}

    def positions(self) -> dict[str, Decimal]:
        """Net base-asset quantity per pair over the open trades (``/status``; negative = short)."""
        out: dict[str, Decimal] = {}
        for trade in self.api.status():
            amount = _dec(trade.get("amount", 0))
            pair = str(trade["pair"])
            out[pair] = out.get(pair, Decimal(0)) + (-amount if trade.get("is_short") else amount)
        return out


# -- helpers -------------------------------------------------------------------------------------


def free_loopback_port() -> int:
    """A port free on 127.0.0.1 right now (the OS picks it; another process could take it before
    the bot binds, in which case the bot fails to start with the reason in its log)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _with_port(settings: BotSettings, port: int) -> BotSettings:
    from dataclasses import replace

    return replace(settings, api_port=port)


def _resolve_source(
    source: StrategySource, sizing: StakeSizing | None, class_name: str | None
) -> tuple[GeneratedStrategy | None, Path | None]:
    if isinstance(source, GeneratedStrategy):
        return source, None
    if isinstance(source, StrategyBundle):
        return render_strategy(source, sizing), None
    path = Path(source)
    if path.suffix == ".py":
        if not path.is_file():
            raise InvalidInput(f"prepare: strategy file {path} does not exist")
        if not class_name or not class_name.isidentifier():
            raise InvalidInput(f"prepare: class_name is required for a strategy file (got {class_name!r})")
        if f"class {class_name}(" not in path.read_text(encoding="utf-8", errors="replace"):
            raise InvalidInput(f"prepare: {path.name} has no 'class {class_name}(' (Freqtrade finds classes by it)")
        return None, path
    return render_strategy(load_bundle(path), sizing), None


def _write_private(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` readable by the owner only (0600 from creation, no window)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)
    os.chmod(path, 0o600)  # an existing file keeps its mode through O_CREAT


def _templates() -> jinja2.Environment:
    folder = resources.files("execdesk.freqtrade") / "templates"
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(folder)),
        autoescape=False,  # noqa: S701 — YAML and Markdown, from validated values
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
    )


#: what a bot process may see of the desk's environment (by name, or by these prefixes): nothing else — no other
#: exchange's keys, no webhook URL or token of the desk's
_BOT_ENV = frozenset({"PATH", "HOME", "USER", "LOGNAME", "SHELL", "LANG", "TZ", "TMPDIR", "TERM", "VIRTUAL_ENV",
                      "LD_LIBRARY_PATH", "SSL_CERT_FILE", "SSL_CERT_DIR", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"})
#: locale, and the numeric libraries' settings (OPENBLAS_CORETYPE keeps older OpenBLAS builds correct on some CPUs)
_BOT_ENV_PREFIXES = ("LC_", "OPENBLAS_", "OMP_", "MKL_", "NUMBA_")


def bot_environment(environ: Mapping[str, str], exchange: str, *, real: bool) -> dict[str, str]:
    """A bot process's environment: the basics a Python process needs, and — for a bot on its real exchange
    only — Freqtrade's ``FREQTRADE__*`` overrides (how its exchange keys arrive, see CHECKLIST.md) and the
    desk's keys of that one exchange (``EXECDESK_<EXCHANGE>_*``). An offline bot runs exactly the config written
    for it, with no key at all."""
    own = f"EXECDESK_{exchange.upper()}_"
    env = {k: v for k, v in environ.items()
           if k in _BOT_ENV or k.startswith(_BOT_ENV_PREFIXES)
           or (real and (k.startswith("FREQTRADE__") or k.startswith(own)))}
    src = str(Path(execdesk.__file__).resolve().parent.parent)  # the harness imports this very execdesk
    inherited = environ.get("PYTHONPATH")
    env["PYTHONPATH"] = os.pathsep.join([src, *([inherited] if inherited else [])])
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


def _pid_alive(pid: int) -> bool:
    """Whether process ``pid`` runs (a zombie does not)."""
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except (OSError, IndexError):
        return True


def _alive_pid(path: Path) -> int | None:
    try:
        pid = int(path.read_text(encoding="utf-8").strip())
    except (OSError, ValueError):
        return None
    return pid if _pid_alive(pid) else None


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def _dec(value: object) -> Decimal:
    return Decimal(str(value if value is not None else 0))
