"""Graded alerts: who is told at each level, where they are sent, and how often.

An :class:`Alert` is one condition (``code``) in one ``scope`` (a deployment id, or ``"portfolio"``)
at one :class:`~execdesk.domain.types.AlertLevel`. The :class:`AlertRouter` decides whether it is
news (de-duplication by ``key = (code, scope)``), records the news through a callback (the ledger
event ``alert.raised``), and hands it to the sinks whose minimum level and audience it reaches
according to the :class:`EscalationTable`:

========== ============================================================
INFO       nobody is paged: the log and the JSON-lines file only
WARNING    execution_lead
CRITICAL   execution_lead, risk_manager
EMERGENCY  execution_lead, risk_manager, orchestrator, on_call
========== ============================================================

Sinks: :class:`LogSink` (python ``logging``), :class:`JsonlSink` (append-only JSON lines) and
:class:`WebhookSink` (a JSON POST in the ``generic``, ``slack``, ``discord`` or ``telegram`` format,
retried on timeouts, 5xx and 429 with the server's Retry-After, never on another 4xx). A sink never
raises into the desk: its failure is a :class:`SinkResult` in the returned :class:`Delivery`.
An :class:`AlertCourier` delivers to the remote sinks (webhooks) off the caller's thread — a queue and a worker
per sink — and hands the results back for the caller to settle; the desk's loop never waits on a webhook. (It is a
:class:`Courier` of alerts; the lead's liaison posts its messages with another.)
Webhook URLs carry secrets (tokens in the path): they are read from environment variables by
:func:`build_router` and only ever printed as ``scheme://host/***``.

The router reads no clock: the alert's ``time`` drives de-duplication, so a replay decides the same.
See ``docs/ALERTS.md`` for the rules, the formats and the configuration section.
"""

from __future__ import annotations

import hashlib
import html
import http.client
import json
import logging
import os
import queue
import re
import threading
import time as _time
import urllib.error
import urllib.request
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from itertools import pairwise
from pathlib import Path
from typing import Annotated, Any, Generic, Literal, Protocol, Self, TypeVar
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    field_validator,
    model_serializer,
    model_validator,
)

from execdesk.domain.types import AlertLevel
from execdesk.errors import InvalidInput, TemporaryError
from execdesk.retry import RetryPolicy

log = logging.getLogger("execdesk.alerts")

PORTFOLIO = "portfolio"
SOURCES: frozenset[str] = frozenset({"monitor", "risk", "executor", "lead"})
LEVELS: tuple[AlertLevel, ...] = (AlertLevel.INFO, AlertLevel.WARNING, AlertLevel.CRITICAL, AlertLevel.EMERGENCY)
_RANK: dict[AlertLevel, int] = {level: i for i, level in enumerate(LEVELS)}
_CODE = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
WebhookFormat = Literal["generic", "slack", "discord", "telegram"]
ParseMode = Literal["HTML", "MarkdownV2"]
DeliveryReason = Literal["new", "escalated", "repeat"]


def rank(level: AlertLevel) -> int:
    """0 for INFO up to 3 for EMERGENCY."""
    return _RANK[AlertLevel(level)]


# --------------------------------------------------------------------------------------------- alert


@dataclass(frozen=True, slots=True)
class Alert:
    """One alert. ``time`` epoch seconds; ``source`` one of monitor / risk / executor / lead; ``code``
    machine-readable (``sharpe_drift``); ``scope`` a deployment id or ``"portfolio"``; ``evidence`` the
    numbers that raised it (copied: later changes to the caller's dict do not reach the alert)."""

    time: int
    level: AlertLevel
    source: str
    code: str
    scope: str
    message: str
    evidence: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "level", AlertLevel(self.level))
        object.__setattr__(self, "evidence", dict(self.evidence))
        if self.source not in SOURCES:
            raise ValueError(f"alert source: got {self.source!r}; expected one of {', '.join(sorted(SOURCES))}")
        if not _CODE.match(self.code):
            raise ValueError(f"alert code: got {self.code!r}; expected snake_case, e.g. 'sharpe_drift'")
        if not self.scope:
            raise ValueError("alert scope: empty; expected a deployment id or 'portfolio'")

    @property
    def key(self) -> tuple[str, str]:
        """What de-duplication compares: ``(code, scope)``."""
        return (self.code, self.scope)

    @property
    def deployment_id(self) -> str | None:
        """The scope as the ledger event's deployment id (``None`` for the portfolio)."""
        return None if self.scope == PORTFOLIO else self.scope

    def ledger_payload(self) -> dict[str, Any]:
        """The ``alert.raised`` event payload: the keys the lead records today, plus ``scope``."""
        return {"level": self.level.value, "source": self.source, "code": self.code, "scope": self.scope,
                "message": self.message, "evidence": dict(self.evidence)}

    @property
    def id(self) -> str:
        """16 hex digits of the SHA-256 of everything the alert says: the same alert has the same id (a receiver
        de-duplicates on it; the desk re-derives its JSON-lines file with it)."""
        return hashlib.sha256(_dumps({"time": self.time, **self.ledger_payload()}).encode()).hexdigest()[:16]

    def to_dict(self) -> dict[str, Any]:
        """Everything, with its ``id``, ``time`` and its ISO-8601 form (the JSON-lines and generic webhook record)."""
        return {"id": self.id, "time": self.time, "time_iso": _iso(self.time), **self.ledger_payload()}

    @classmethod
    def of_event(cls, time: int, payload: Mapping[str, Any]) -> Alert:
        """The alert an ``alert.raised`` event recorded (``payload`` as :meth:`ledger_payload` wrote it)."""
        return cls(time, payload["level"], payload["source"], payload["code"], payload["scope"], payload["message"],
                   payload.get("evidence", {}))


def _iso(t: int) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _dumps(obj: object) -> str:
    # Evidence may hold Decimals or timestamps: their str() is what a reader wants.
    return json.dumps(obj, sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=str)


def _text(value: object) -> str:
    return value if isinstance(value, str) else _dumps(value)


# ---------------------------------------------------------------------------------------- escalation

#: Who is told at each level (the roles of the desk plus a human on call). Each level includes the one below.
DEFAULT_ESCALATION: dict[AlertLevel, tuple[str, ...]] = {
    AlertLevel.INFO: (),
    AlertLevel.WARNING: ("execution_lead",),
    AlertLevel.CRITICAL: ("execution_lead", "risk_manager"),
    AlertLevel.EMERGENCY: ("execution_lead", "risk_manager", "orchestrator", "on_call"),
}


@dataclass(frozen=True)
class EscalationTable:
    """level -> recipients (default :data:`DEFAULT_ESCALATION`). Recipients only widen as the level rises."""

    levels: Mapping[AlertLevel, tuple[str, ...]] = field(default_factory=lambda: dict(DEFAULT_ESCALATION))

    def __post_init__(self) -> None:
        table = {AlertLevel(k): tuple(v) for k, v in {**DEFAULT_ESCALATION, **self.levels}.items()}
        object.__setattr__(self, "levels", table)
        for lower, higher in pairwise(LEVELS):
            missing = sorted(set(table[lower]) - set(table[higher]))
            if missing:
                raise InvalidInput(f"escalation.{higher.value}: must include everyone told at {lower.value} "
                                   f"(missing: {', '.join(missing)})")

    def recipients(self, level: AlertLevel) -> tuple[str, ...]:
        return self.levels[AlertLevel(level)]

    @property
    def everyone(self) -> frozenset[str]:
        return frozenset(r for rs in self.levels.values() for r in rs)


# --------------------------------------------------------------------------------------------- sinks


@dataclass(frozen=True, slots=True)
class SinkResult:
    """One sink's answer to one alert: ``ok``, how many attempts, the last HTTP status, a redacted error."""

    sink: str
    ok: bool
    attempts: int = 1
    status: int | None = None
    error: str | None = None


class AlertSink:
    """Base of the sinks. ``min_level``: the least level it takes. ``audience``: the recipients it
    reaches (a channel for the risk manager...); ``None`` means the desk's own record (log, file),
    which takes every level from ``min_level`` whoever is told.

    ``remote`` [False]: the sink talks to another machine and may take seconds (a webhook); a router with an
    :class:`AlertCourier` hands such a sink's alerts to the courier's worker instead of sending them itself."""

    name: str = "sink"
    remote: bool = False

    def __init__(self, min_level: AlertLevel = AlertLevel.INFO, audience: Iterable[str] | None = None) -> None:
        self.min_level = AlertLevel(min_level)
        self.audience = None if audience is None else frozenset(audience)

    def accepts(self, level: AlertLevel, recipients: Iterable[str]) -> bool:
        if rank(level) < rank(self.min_level):
            return False
        return self.audience is None or not self.audience.isdisjoint(recipients)

    def send(self, alert: Alert) -> SinkResult:  # pragma: no cover - interface
        raise NotImplementedError


_LOG_LEVEL = {AlertLevel.INFO: logging.INFO, AlertLevel.WARNING: logging.WARNING,
              AlertLevel.CRITICAL: logging.ERROR, AlertLevel.EMERGENCY: logging.CRITICAL}


class LogSink(AlertSink):
    """Python ``logging`` on ``logger`` [execdesk.alerts]: INFO->INFO, WARNING->WARNING,
    CRITICAL->ERROR, EMERGENCY->CRITICAL; the alert's dict is in the record's ``alert`` attribute."""

    def __init__(self, logger: str = "execdesk.alerts", min_level: AlertLevel = AlertLevel.INFO) -> None:
        super().__init__(min_level)
        self.logger = logging.getLogger(logger)
        self.name = f"log:{logger}"

    def send(self, alert: Alert) -> SinkResult:
        self.logger.log(_LOG_LEVEL[alert.level], "[%s] %s %s: %s", alert.level.value, alert.code, alert.scope,
                        alert.message, extra={"alert": alert.to_dict()})
        return SinkResult(self.name, True)


class JsonlSink(AlertSink):
    """One JSON line per alert appended to ``path`` (created with its folder). The file is opened in
    append mode for each alert and the line written in one call, so several writers interleave whole
    lines and nothing is ever rewritten; ``fsync`` [False] forces each line to disk.

    Each line carries the alert's ``id``; :meth:`last` reads the last line back (a line cut short by a crash is
    cut off first), so the desk can append what a crash left out without writing a line twice."""

    def __init__(self, path: Path | str, fsync: bool = False, min_level: AlertLevel = AlertLevel.INFO) -> None:
        super().__init__(min_level)
        self.path = Path(path)
        self.fsync = fsync
        self.name = f"jsonl:{self.path.name}"

    def last(self) -> tuple[str | None, int | None] | None:
        """The ``(id, time)`` of the file's last line (None: no line yet); a torn last line is truncated away."""
        return _last_jsonl_line(self.path)

    def send(self, alert: Alert) -> SinkResult:
        line = (_dumps(alert.to_dict()) + "\n").encode("utf-8")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                os.write(fd, line)
                if self.fsync:
                    os.fsync(fd)
            finally:
                os.close(fd)
        except OSError as exc:
            return SinkResult(self.name, False, error=f"{type(exc).__name__}: {exc.strerror or exc}")
        return SinkResult(self.name, True)


def _last_jsonl_line(path: Path) -> tuple[str | None, int | None] | None:
    """The ``(id, time)`` of the last line of a JSON-lines alert file (None when it has none); a last line
    without its newline (a write cut short) is truncated away. Only the file's tail is read."""
    try:
        with path.open("rb+") as fh:
            size = fh.seek(0, os.SEEK_END)
            tail = b""
            while size > 0:
                step = min(size, 65536)
                size -= step
                fh.seek(size)
                tail = fh.read(step) + tail
                if tail.count(b"\n") >= 2 or size == 0:
                    break
            if tail and not tail.endswith(b"\n"):
                cut = tail.rfind(b"\n")
                fh.truncate(size + cut + 1 if cut >= 0 else size)
                tail = tail[:cut + 1] if cut >= 0 else b""
    except OSError:  # none yet, or not a file: writing to it will say so
        return None
    lines = tail.splitlines()
    if not lines:
        return None
    try:
        data = json.loads(lines[-1])
    except ValueError:
        return (None, None)
    if not isinstance(data, dict):
        return (None, None)
    key, time = data.get("id"), data.get("time")
    return (key if isinstance(key, str) else None, time if isinstance(time, int) else None)


# ------------------------------------------------------------------------------------- webhook formats

DISCORD_COLOR: dict[AlertLevel, int] = {AlertLevel.INFO: 0x3498DB, AlertLevel.WARNING: 0xF1C40F,
                                        AlertLevel.CRITICAL: 0xE74C3C, AlertLevel.EMERGENCY: 0x992D22}
_MDV2_SPECIAL = re.compile(r"([_*\[\]()~`>#+\-=|{}.!\\])")


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _fit(raw: str, escape: Callable[[str], str], limit: int) -> str:
    """``escape(raw)``, the raw text shortened (never the escaped one: that could split an entity
    such as ``&amp;``) until the result has at most ``limit`` characters."""
    out = escape(raw)
    keep = len(raw)
    while len(out) > limit and keep > 0:
        keep = min(keep - 1, keep * limit // len(out))
        out = escape(raw[:keep] + "…")
    return out


def slack_escape(text: str) -> str:
    """Slack mrkdwn control characters: ``&``, ``<``, ``>`` (nothing else is escaped by Slack)."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def telegram_escape(text: str, parse_mode: ParseMode = "HTML", code: bool = False) -> str:
    """Text for Telegram's ``parse_mode``: HTML escapes ``& < >``; MarkdownV2 escapes
    ``_*[]()~`>#+-=|{}.!`` and ``\\`` (inside a code entity only `````` ` `````` and ``\\``)."""
    if parse_mode == "HTML":
        return html.escape(text, quote=False)
    if code:
        return text.replace("\\", "\\\\").replace("`", "\\`")
    return _MDV2_SPECIAL.sub(r"\\\1", text)


def format_generic(alert: Alert) -> dict[str, Any]:
    """The alert itself: :meth:`Alert.to_dict`."""
    return alert.to_dict()


def format_slack(alert: Alert) -> dict[str, Any]:
    """A Slack incoming-webhook message: ``text`` (the notification fallback) and Block Kit ``blocks``
    (header, message, up to 10 evidence fields, a context line)."""
    lv, code, scope = alert.level.value, alert.code, _fit(alert.scope, slack_escape, 200)
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": _cut(f"{lv}: {code}", 150)}},
        {"type": "section", "text": {"type": "mrkdwn", "text": _fit(alert.message, slack_escape, 3000)}},
    ]
    items = list(alert.evidence.items())[:10]
    if items:
        blocks.append({"type": "section", "fields": [
            {"type": "mrkdwn", "text": f"*{_fit(str(k), slack_escape, 200)}*\n{_fit(_text(v), slack_escape, 1700)}"}
            for k, v in items]})
    blocks.append({"type": "context", "elements": [
        {"type": "mrkdwn", "text": f"scope `{scope}` · source {alert.source} · {_iso(alert.time)}"}]})
    text = f"[{lv}] {code} ({scope}): {_fit(alert.message, slack_escape, 2700)}"
    return {"text": text, "blocks": blocks}


def format_discord(alert: Alert) -> dict[str, Any]:
    """A Discord execute-webhook body: ``content``, one embed (title, description, colour by level,
    inline fields: scope, source, up to 23 evidence items, ISO timestamp); mentions disabled, so an
    ``@everyone`` in a message pings nobody."""
    fields = [{"name": "scope", "value": _cut(alert.scope, 1024), "inline": True},
              {"name": "source", "value": alert.source, "inline": True}]
    fields += [{"name": _cut(str(k), 256), "value": _cut(_text(v), 1024) or "-", "inline": True}
               for k, v in list(alert.evidence.items())[:23]]
    embed = {"title": _cut(f"{alert.level.value}: {alert.code}", 256), "description": _cut(alert.message, 4096),
             "color": DISCORD_COLOR[alert.level], "fields": fields, "timestamp": _iso(alert.time)}
    content = _cut(f"**{alert.level.value}** {alert.code} ({alert.scope})", 2000)
    return {"content": content, "embeds": [embed], "allowed_mentions": {"parse": []}}


def format_telegram(alert: Alert, chat_id: str, parse_mode: ParseMode = "HTML") -> dict[str, Any]:
    """A Telegram Bot API ``sendMessage`` body: ``chat_id``, ``text`` (level, code, scope, message,
    evidence, time; escaped for ``parse_mode``; at most 4096 characters), link previews off."""
    def esc(s: str, code: bool = False) -> str:
        return telegram_escape(s, parse_mode, code)

    if parse_mode == "HTML":
        def bold(s: str) -> str:
            return f"<b>{esc(s)}</b>"

        def mono(s: str) -> str:
            return f"<code>{esc(s)}</code>"
    else:
        def bold(s: str) -> str:
            return f"*{esc(s)}*"

        def mono(s: str) -> str:
            return f"`{esc(s, code=True)}`"

    def mono_fit(s: str, limit: int) -> str:
        return mono(_cut(s, limit))

    head = [f"{bold(alert.level.value)} {mono_fit(alert.code, 100)}",
            f"{esc('scope')} {mono_fit(alert.scope, 200)} {esc('· source ' + alert.source)}", ""]
    evidence = [f"{esc(_cut(str(k), 100) + ':')} {mono_fit(_text(v), 200)}" for k, v in alert.evidence.items()]
    while len("\n".join(evidence)) > 2500:  # leave the message room
        evidence.pop()
    tail = ["", *evidence[:20], "", esc(_iso(alert.time))] if evidence else ["", esc(_iso(alert.time))]
    room = 4096 - len("\n".join(head + tail)) - 1  # Telegram's limit counts the text after entity parsing:
    text = "\n".join([*head, _fit(alert.message, esc, max(room, 100)), *tail])  # this bound is conservative
    return {"chat_id": chat_id, "text": text, "parse_mode": parse_mode, "link_preview_options": {"is_disabled": True}}


# -------------------------------------------------------------------------------------- webhook sink


def redact_url(url: str) -> str:
    """``scheme://host[:port]/***``: what may be printed of a webhook URL (paths and queries hold tokens)."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or "?"
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return "<invalid url>"
    return f"{parts.scheme or '?'}://{host}{port}/***"


class _Retryable(TemporaryError):
    def __init__(self, message: str, status: int | None = None, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.retry_after = retry_after


class _Permanent(Exception):
    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


def _retry_after(err: urllib.error.HTTPError) -> float | None:
    """Seconds from a Retry-After header, else from a JSON body (Discord ``retry_after``, Telegram
    ``parameters.retry_after``). An HTTP-date Retry-After is ignored: reading it needs the wall clock."""
    header = err.headers.get("Retry-After") if err.headers else None
    if header is not None:
        try:
            return max(0.0, float(header))
        except ValueError:
            pass
    try:
        body = json.loads(err.read(4096) or b"null")
    except (OSError, ValueError):
        return None
    if isinstance(body, dict):
        value = body.get("retry_after", (body.get("parameters") or {}).get("retry_after"))
        if isinstance(value, int | float):
            return max(0.0, float(value))
    return None


class WebhookSink(AlertSink):
    """A JSON POST of each alert to ``url`` in ``format`` (generic | slack | discord | telegram).

    ``timeout_s`` [5.0] per attempt; ``retry`` [RetryPolicy(attempts=3, base_delay_s=0.5,
    max_delay_s=5.0)] retries timeouts, connection errors, 408, 429 (waiting its Retry-After, which
    must not exceed ``max_retry_after_s`` [30]) and 5xx; any other 4xx fails at once. ``headers`` are
    sent but never printed. ``chat_id`` and ``parse_mode`` [HTML] are for ``telegram``. The URL is
    printed only as :func:`redact_url`; error texts are scrubbed of its path and query.

    A remote sink: on the desk it is posted by the router's :class:`AlertCourier`, off the loop.
    """

    remote = True

    def __init__(self, url: str, format: WebhookFormat = "generic", *, timeout_s: float = 5.0,
                 retry: RetryPolicy | None = None, headers: Mapping[str, str] | None = None,
                 chat_id: str | None = None, parse_mode: ParseMode = "HTML", max_retry_after_s: float = 30.0,
                 min_level: AlertLevel = AlertLevel.WARNING, audience: Iterable[str] | None = None,
                 name: str | None = None) -> None:
        super().__init__(min_level, audience)
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise InvalidInput(f"webhook url {redact_url(url)}: expected an http(s) URL with a host")
        if format not in ("generic", "slack", "discord", "telegram"):
            raise InvalidInput(f"webhook format: got {format!r}; expected generic, slack, discord or telegram")
        if format == "telegram" and not chat_id:
            raise InvalidInput("webhook format telegram: a chat_id is required")
        if timeout_s <= 0:
            raise InvalidInput(f"webhook timeout_s: got {timeout_s}; expected > 0")
        self._url = url
        self._secrets = [s for s in (url, parts.path, parts.query, *(headers or {}).values()) if len(s) > 1]
        self.format: WebhookFormat = format
        self.timeout_s = timeout_s
        self.retry = retry if retry is not None else RetryPolicy(attempts=3, base_delay_s=0.5, max_delay_s=5.0)
        self._headers = {"Content-Type": "application/json; charset=utf-8", "User-Agent": "execdesk-alerts/1",
                         **(headers or {})}
        self.chat_id = chat_id
        self.parse_mode: ParseMode = parse_mode
        self.max_retry_after_s = max_retry_after_s
        self.name = name or f"webhook:{format}@{redact_url(url)}"

    def __repr__(self) -> str:
        return f"WebhookSink({redact_url(self._url)}, format={self.format!r}, min_level={self.min_level.value})"

    def payload(self, alert: Alert) -> dict[str, Any]:
        """The JSON body this sink posts for ``alert``."""
        if self.format == "slack":
            return format_slack(alert)
        if self.format == "discord":
            return format_discord(alert)
        if self.format == "telegram":
            return format_telegram(alert, self.chat_id or "", self.parse_mode)
        return format_generic(alert)

    def scrub(self, text: str) -> str:
        """``text`` with the URL, its path, its query and the header values replaced by ``***``."""
        for secret in sorted(self._secrets, key=len, reverse=True):
            text = text.replace(secret, "***")
        return text

    def send(self, alert: Alert) -> SinkResult:
        return self.deliver(self.payload(alert))

    def deliver(self, payload: Mapping[str, Any]) -> SinkResult:
        """POST ``payload`` as JSON with the retries above; never raises: a failure is a :class:`SinkResult`
        with a scrubbed error (an alert's formatted payload, or any other JSON record)."""
        attempts = 0

        def post() -> int:
            nonlocal attempts
            attempts += 1
            return self._post(body)

        try:
            body = json.dumps(payload, ensure_ascii=False, default=str).encode("utf-8")
            status = self.retry.call(post)
        except _Retryable as exc:
            return SinkResult(self.name, False, attempts, exc.status, self.scrub(f"gave up: {exc}"))
        except _Permanent as exc:
            return SinkResult(self.name, False, attempts, exc.status, self.scrub(str(exc)))
        except Exception as exc:  # a sink never breaks the desk
            return SinkResult(self.name, False, attempts, None, self.scrub(f"{type(exc).__name__}: {exc}"))
        return SinkResult(self.name, True, attempts, status)

    def _post(self, body: bytes) -> int:
        request = urllib.request.Request(self._url, data=body, headers=self._headers, method="POST")  # noqa: S310
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as response:  # noqa: S310 - http(s) only
                response.read(65536)
                return int(response.status)
        except urllib.error.HTTPError as err:
            code = err.code
            if code == 429:
                wait = _retry_after(err)
                if wait is not None and wait > self.max_retry_after_s:
                    raise _Permanent(f"HTTP 429: retry after {wait:g} s exceeds {self.max_retry_after_s:g} s",
                                     code) from None
                raise _Retryable(f"HTTP 429 (rate limited{f', retry after {wait:g} s' if wait else ''})",
                                 code, wait) from None
            if code == 408 or code >= 500:
                raise _Retryable(f"HTTP {code} {err.reason}", code) from None
            raise _Permanent(f"HTTP {code} {err.reason} (not retried)", code) from None
        except TimeoutError as exc:
            raise _Retryable(f"timeout after {self.timeout_s:g} s: {exc}") from None
        except urllib.error.URLError as exc:
            raise _Retryable(f"connection failed: {exc.reason}") from None
        except (OSError, http.client.HTTPException) as exc:  # the connection broke mid-answer
            raise _Retryable(f"{type(exc).__name__}: {exc}") from None


# ------------------------------------------------------------------------------------------ courier

#: how long a courier waits, when it is closed, for its sinks to take what it still holds [5 s]
DRAIN_TIMEOUT_S = 5.0

_Item = TypeVar("_Item")
_Item_contra = TypeVar("_Item_contra", contravariant=True)


class Carrier(Protocol[_Item_contra]):
    """What a :class:`Courier` hands its items to: a ``name`` (in the results) and ``send(item)``, answering with a
    :class:`SinkResult` (an alert sink is one for alerts; the liaison's poster, for messages)."""

    @property
    def name(self) -> str: ...

    def send(self, item: _Item_contra, /) -> SinkResult: ...


def deliver(sink: Carrier[_Item], item: _Item) -> SinkResult:
    """``sink.send(item)``; never raises: an exception is a failed :class:`SinkResult` (scrubbed when the sink can)."""
    try:
        return sink.send(item)
    except Exception as exc:  # a sink never breaks the desk
        scrub = getattr(sink, "scrub", None)
        text = f"{type(exc).__name__}: {exc}"
        return SinkResult(sink.name, False, error=scrub(text) if callable(scrub) else text)


@dataclass(slots=True)
class CourierStats:
    """What a courier was given and what came of it (deliveries: one item to one sink)."""

    queued: int = 0  # handed to the courier
    delivered: int = 0  # the sink took it
    failed: int = 0  # the sink failed it after its retries
    left: int = 0  # still queued or in flight when the courier was closed (reported as failures)


class _Lane(Generic[_Item]):
    """One queue and its worker thread: the items in the order given, one at a time."""

    def __init__(self, name: str, results: queue.SimpleQueue[tuple[_Item, SinkResult]]) -> None:
        self.name = name
        self.results = results
        self.todo: deque[tuple[_Item, Carrier[_Item]]] = deque()
        self.current: tuple[_Item, Carrier[_Item]] | None = None
        self.cond = threading.Condition()
        self.closing = False
        self.abandoned = False
        self.thread = threading.Thread(target=self._work, name=name, daemon=True)
        self.thread.start()

    def put(self, item: _Item, sink: Carrier[_Item]) -> None:
        with self.cond:
            self.todo.append((item, sink))
            self.cond.notify_all()

    def _work(self) -> None:
        while True:
            with self.cond:
                while not self.todo and not self.closing:
                    self.cond.wait()
                if not self.todo:
                    return
                job = self.current = self.todo.popleft()
            result = deliver(job[1], job[0])
            with self.cond:
                if not self.abandoned:  # (an abandoned one was reported as left in flight)
                    self.results.put((job[0], result))
                self.current = None
                self.cond.notify_all()

    def close(self, deadline: float) -> tuple[tuple[_Item, Carrier[_Item]] | None, list[tuple[_Item, Carrier[_Item]]]]:
        """Let the worker finish its queue until ``deadline`` (``time.monotonic``); what is then left: the one in
        flight and the ones never tried. The worker ends once its queue is empty (a call in flight ends first)."""
        with self.cond:
            self.closing = True
            self.cond.notify_all()
            while self.todo or self.current is not None:
                wait = deadline - _time.monotonic()
                if wait <= 0:
                    break
                self.cond.wait(wait)
            self.abandoned = True
            queued = list(self.todo)
            self.todo.clear()
            return self.current, queued


class Courier(Generic[_Item]):
    """Delivers items to remote sinks off the caller's thread: a queue and a worker thread per lane (by default
    the sink's name: a sink that hangs holds up only its own queue), each lane's items in the order they were put.

    :meth:`put` returns at once. What each delivery came to goes back through a queue that the caller drains with
    :meth:`done` (so a failure is settled on the caller's thread). :meth:`close` stops taking items, waits at
    most ``drain_timeout_s`` [:data:`DRAIN_TIMEOUT_S`] for the queues to empty, and returns the results still due
    plus a failed :class:`SinkResult` for every delivery left over — ``attempts=0`` for one never tried,
    ``attempts=1`` for the one in flight (it may yet arrive) — so nothing handed to the courier is dropped without
    a word. The workers are daemon threads: a process that ends without :meth:`close` (a crash) loses what they
    had not sent. Used as a context, the courier is closed at its end and what it left is logged (:meth:`warn`).

    :class:`AlertCourier` carries alerts (the router's webhooks), :class:`execdesk.lead.liaison.LiaisonCourier`
    the lead's messages (its webhooks, one lane per recipient). ``put``, ``done`` and ``close`` are called from one
    thread (the loop's); the workers only call their sink."""

    #: the workers' thread names: ``execdesk-<kind>:<lane>``
    kind = "deliveries"

    def __init__(self, drain_timeout_s: float = DRAIN_TIMEOUT_S) -> None:
        if drain_timeout_s < 0:
            raise InvalidInput(f"alerts.drain_timeout: got {drain_timeout_s} s; expected >= 0")
        self.drain_timeout_s = drain_timeout_s
        self.stats = CourierStats()
        self.closed = False
        self._lanes: dict[str, _Lane[_Item]] = {}
        self._results: queue.SimpleQueue[tuple[_Item, SinkResult]] = queue.SimpleQueue()

    def put(self, item: _Item, sink: Carrier[_Item], lane: str | None = None) -> None:
        """Queue ``item`` for ``sink`` on the queue ``lane`` [the sink's name] (its worker is started with the
        lane's first item)."""
        if self.closed:
            raise RuntimeError(f"the {self.kind} courier is closed")
        key = sink.name if lane is None else lane
        queue_ = self._lanes.get(key)
        if queue_ is None:
            queue_ = self._lanes[key] = _Lane(f"execdesk-{self.kind}:{key}", self._results)
        queue_.put(item, sink)
        self.stats.queued += 1

    @property
    def pending(self) -> int:
        """Deliveries queued or in flight, or finished and not yet taken by :meth:`done`."""
        s = self.stats
        return s.queued - s.delivered - s.failed - s.left

    def done(self) -> list[tuple[_Item, SinkResult]]:
        """The deliveries finished since the last call, in the order they finished; never waits."""
        out: list[tuple[_Item, SinkResult]] = []
        while not self._results.empty():
            try:
                item, result = self._results.get_nowait()
            except queue.Empty:
                break
            out.append((item, result))
            if result.ok:
                self.stats.delivered += 1
            else:
                self.stats.failed += 1
        return out

    def deadline(self, timeout_s: float | None = None) -> float:
        """The ``time.monotonic`` at which a close begun now stops waiting (``timeout_s`` [``drain_timeout_s``]):
        for closing several couriers within one bounded wait (``close(until=...)``)."""
        return _time.monotonic() + (self.drain_timeout_s if timeout_s is None else timeout_s)

    def close(self, timeout_s: float | None = None, *, until: float | None = None) -> list[tuple[_Item, SinkResult]]:
        """Stop taking items; wait up to ``timeout_s`` [``drain_timeout_s``] (for all the lanes together), or until
        the ``time.monotonic`` ``until`` (a :meth:`deadline` shared with another courier), for what is queued;
        return what :meth:`done` would, then a failure for each delivery left over. Closing again returns only
        what :meth:`done` would."""
        if self.closed:
            return self.done()
        self.closed = True
        wait = self.drain_timeout_s if timeout_s is None else timeout_s
        deadline = self.deadline(wait) if until is None else until
        left: list[tuple[_Item, SinkResult]] = []
        for lane in self._lanes.values():
            in_flight, queued = lane.close(deadline)
            if in_flight is not None:
                left.append((in_flight[0], SinkResult(in_flight[1].name, False, 1, None, (
                    f"delivery unknown: still in flight when the desk stopped (waited {wait:g} s for the sink)"))))
            left += [(item, SinkResult(sink.name, False, 0, None,
                                       f"not sent: still queued when the desk stopped (waited {wait:g} s for "
                                       "the sink)")) for item, sink in queued]
        out = self.done()
        self.stats.left += len(left)
        return out + left

    def warn(self, item: _Item, result: SinkResult) -> None:
        """Log a failed delivery (what the context's end does with what the courier left)."""
        log.warning("%r not delivered by %s: %s", item, result.sink, result.error)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        for item, result in self.close():
            if not result.ok:
                self.warn(item, result)


class AlertCourier(Courier[Alert]):
    """The courier of the alert router's remote sinks (webhooks): a lane per sink name (see :class:`Courier`)."""

    kind = "alerts"

    def warn(self, item: Alert, result: SinkResult) -> None:
        _warn_undelivered(item, result)


def _warn_undelivered(alert: Alert, result: SinkResult) -> None:
    log.warning("alert %s/%s not delivered by %s: %s", alert.code, alert.scope, result.sink, result.error)


# ------------------------------------------------------------------------------------------- router


@dataclass(frozen=True, slots=True)
class Delivery:
    """What the router did with a sent alert: why it was sent (``new`` / ``escalated`` / ``repeat``),
    who is told, each sink's result, and how many repeats were suppressed since the key was last sent."""

    alert: Alert
    reason: DeliveryReason
    recipients: tuple[str, ...]
    results: tuple[SinkResult, ...]
    suppressed_since_last: int = 0

    @property
    def ok(self) -> bool:
        return all(r.ok for r in self.results)

    @property
    def failures(self) -> tuple[SinkResult, ...]:
        return tuple(r for r in self.results if not r.ok)


@dataclass(slots=True)
class _Standing:
    level: AlertLevel
    sent_at: int
    suppressed: int = 0


@dataclass(frozen=True, slots=True)
class AlertStats:
    """Counters since the router was made."""

    raised: int
    sent: int
    suppressed: int
    sink_failures: int
    suppressed_by_key: Mapping[tuple[str, str], int]


class AlertRouter:
    """De-duplicates, records and routes alerts. Not thread-safe: one loop calls it.

    ``record(alert)`` is called for every alert that is sent — the first of its key, an escalation, a
    repeat after ``repeat_after_s`` [``None``: never; a standing condition is sent once], the first after
    :meth:`clear` — and
    before any sink is tried (ledger first). A failing ``record`` raises: the ledger is not a sink.
    Suppressed repeats are counted (:meth:`stats`), not recorded.

    With a :attr:`courier`, the remote sinks (webhooks) are not sent to by the router itself: their alerts are
    queued for the courier's workers, and what came of them is taken back on the caller's thread by
    :meth:`collect` (and, when the desk stops, :meth:`close_courier`) — each failure then counted, logged and told
    to :attr:`on_failure` as a failure of a local sink is at once.
    """

    def __init__(self, sinks: Iterable[AlertSink], record: Callable[[Alert], None],
                 escalation: EscalationTable | None = None, repeat_after_s: int | None = None) -> None:
        if repeat_after_s is not None and repeat_after_s <= 0:
            raise InvalidInput(f"alerts.repeat_after: got {repeat_after_s} s; expected a positive duration")
        self.sinks = list(sinks)
        self.record = record
        self.escalation = escalation or EscalationTable()
        self.repeat_after_s = repeat_after_s
        self._standing: dict[tuple[str, str], _Standing] = {}
        self._suppressed_by_key: dict[tuple[str, str], int] = {}
        self._raised = self._sent = self._suppressed = self._failures = 0
        #: told of every delivery that failed after its retries (the desk records it: ``alert.delivery_failed``)
        self.on_failure: Callable[[Alert, SinkResult], None] | None = None
        #: when set, :meth:`raise_` records only; the sinks hear of an alert by :meth:`send`, which the desk calls
        #: once the alert's event is committed (:mod:`execdesk.desk.effects`)
        self.deferred = False
        #: when set, the remote sinks' alerts are delivered by it, off the caller's thread (see the class docstring)
        self.courier: AlertCourier | None = None

    def raise_(self, alert: Alert) -> Delivery | None:
        """Send ``alert`` if it is news (see the class docstring); ``None`` when it is a suppressed repeat."""
        self._raised += 1
        standing = self._standing.get(alert.key)
        reason = self._reason(alert, standing)
        if reason is None:  # only a standing key is suppressed
            if standing is not None:
                standing.suppressed += 1
            self._suppressed += 1
            self._suppressed_by_key[alert.key] = self._suppressed_by_key.get(alert.key, 0) + 1
            return None
        self.record(alert)
        self._standing[alert.key] = _Standing(alert.level, alert.time)
        self._sent += 1
        recipients = self.escalation.recipients(alert.level)
        results = () if self.deferred else self.send(alert)
        return Delivery(alert, reason, recipients, results, standing.suppressed if standing else 0)

    def send(self, alert: Alert) -> tuple[SinkResult, ...]:
        """Hand ``alert`` to every sink that takes its level and recipients (what :meth:`raise_` does right after
        recording, unless :attr:`deferred`: then the desk calls this once the alert's event is committed), in the
        sinks' order. The results of the sinks sent to here; a remote sink's alert goes to the :attr:`courier`
        when there is one (its result comes by :meth:`collect`)."""
        recipients = self.escalation.recipients(alert.level)
        results: list[SinkResult] = []
        for sink in self.sinks:
            if not sink.accepts(alert.level, recipients):
                continue
            if sink.remote and self.courier is not None:
                self.courier.put(alert, sink)
            else:
                results.append(deliver(sink, alert))
        for result in results:
            self._settle(alert, result)
        return tuple(results)

    def collect(self) -> list[tuple[Alert, SinkResult]]:
        """What the :attr:`courier` delivered or failed since the last call (never waits): each failure counted,
        logged and told to :attr:`on_failure`, on the caller's thread."""
        if self.courier is None:
            return []
        done = self.courier.done()
        for alert, result in done:
            self._settle(alert, result)
        return done

    def close_courier(self, timeout_s: float | None = None, *,
                      until: float | None = None) -> list[tuple[Alert, SinkResult]]:
        """Close the :attr:`courier` (:meth:`Courier.close`: a bounded wait for what it holds, ``timeout_s`` or
        ``until``) and settle what it returns as :meth:`collect` does — a delivery it left over is a failure like
        any other."""
        if self.courier is None:
            return []
        done = self.courier.close(timeout_s, until=until)
        for alert, result in done:
            self._settle(alert, result)
        return done

    def _settle(self, alert: Alert, result: SinkResult) -> None:
        if result.ok:
            return
        self._failures += 1
        _warn_undelivered(alert, result)
        if self.on_failure is not None:
            self.on_failure(alert, result)

    def _reason(self, alert: Alert, standing: _Standing | None) -> DeliveryReason | None:
        if standing is None:
            return "new"
        if rank(alert.level) > rank(standing.level):
            return "escalated"
        if self.repeat_after_s is not None and alert.time - standing.sent_at >= self.repeat_after_s:
            return "repeat"
        return None

    def clear(self, code: str, scope: str) -> bool:
        """The condition ``(code, scope)`` is over: its next alert is sent again. Whether it was standing."""
        return self._standing.pop((code, scope), None) is not None

    def standing(self) -> dict[tuple[str, str], AlertLevel]:
        """The keys currently de-duplicated, with the level last sent."""
        return {key: s.level for key, s in self._standing.items()}

    def stats(self) -> AlertStats:
        return AlertStats(self._raised, self._sent, self._suppressed, self._failures, dict(self._suppressed_by_key))


# ------------------------------------------------------------------------------------------- config

_STRICT = ConfigDict(extra="forbid", frozen=True)
_DURATION = re.compile(r"^(\d+)\s*([smhdw])$")
_UNIT = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_ENV_NAME = r"^[A-Za-z_][A-Za-z0-9_]*$"


def parse_duration(value: str | int) -> int:
    """``"90s"``, ``"15m"``, ``"6h"``, ``"1d"``, ``"1w"`` or an integer number of seconds."""
    if isinstance(value, bool):
        raise ValueError("a duration such as 6h, 30m or 1d")
    if isinstance(value, int):
        seconds = value
    else:
        match = _DURATION.match(value.strip())
        if not match:
            raise ValueError("a duration such as 6h, 30m or 1d, or 'never'")
        seconds = int(match.group(1)) * _UNIT[match.group(2)]
    if seconds <= 0:
        raise ValueError("a positive duration")
    return seconds


class RetrySection(BaseModel):
    model_config = _STRICT
    attempts: int = Field(3, ge=1, le=10)
    base_delay_s: float = Field(0.5, ge=0, le=60)
    max_delay_s: float = Field(5.0, ge=0, le=300)


class LogSinkConfig(BaseModel):
    model_config = _STRICT
    kind: Literal["log"]
    min_level: AlertLevel = AlertLevel.INFO
    logger: str = "execdesk.alerts"


class JsonlSinkConfig(BaseModel):
    model_config = _STRICT
    kind: Literal["jsonl"]
    path: Path
    fsync: bool = False
    min_level: AlertLevel = AlertLevel.INFO


class WebhookEndpoint(BaseModel):
    """Where a webhook posts, as a config file names it: the URL and the header values come from
    environment variables, never from the file (one pasted in is refused, redacted in the error)."""

    model_config = _STRICT
    url_env: str = Field(pattern=_ENV_NAME)
    timeout_s: float = Field(5.0, gt=0, le=60)
    retry: RetrySection = Field(default_factory=RetrySection)
    max_retry_after_s: float = Field(30.0, ge=0, le=600)
    headers_env: dict[str, str] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _no_inline_secrets(cls, data: object) -> object:
        # A URL or header pasted into the file is refused as an unknown key; the error would echo it,
        # so it is redacted first.
        if isinstance(data, dict):
            data = dict(data)
            for key in ("url", "webhook_url"):
                if key in data:
                    data[key] = redact_url(str(data[key]))
            if isinstance(data.get("headers"), dict):
                data["headers"] = dict.fromkeys(data["headers"], "***")
        return data

    @field_validator("headers_env")
    @classmethod
    def _env_names(cls, value: dict[str, str]) -> dict[str, str]:
        bad = [v for v in value.values() if not re.match(_ENV_NAME, v)]
        if bad:
            raise ValueError(f"values must be environment variable names, not {bad[0]!r}")
        return value


class WebhookSinkConfig(WebhookEndpoint):
    """An alert sink posting to a webhook (see :class:`WebhookEndpoint` for where it posts)."""

    kind: Literal["webhook"]
    format: WebhookFormat = "generic"
    min_level: AlertLevel = AlertLevel.WARNING
    to: tuple[str, ...] | None = None
    chat_id: str | None = None
    chat_id_env: str | None = Field(None, pattern=_ENV_NAME)
    parse_mode: ParseMode = "HTML"
    name: str | None = Field(None, min_length=1, max_length=64)

    @model_validator(mode="after")
    def _telegram(self) -> WebhookSinkConfig:
        if self.format == "telegram" and (self.chat_id is None) == (self.chat_id_env is None):
            raise ValueError("format telegram needs exactly one of chat_id or chat_id_env")
        if self.format != "telegram" and (self.chat_id or self.chat_id_env):
            raise ValueError("chat_id / chat_id_env are for format telegram only")
        return self


SinkConfig = Annotated[LogSinkConfig | JsonlSinkConfig | WebhookSinkConfig, Field(discriminator="kind")]


class AlertsConfig(BaseModel):
    """The desk config's ``alerts`` section (see docs/ALERTS.md).

    ``sinks`` [one log sink]; ``repeat_after`` [never: a standing condition is sent once, again only when
    it escalates or clears and recurs; e.g. ``6h`` for reminders]; ``escalation``
    level -> recipients, merged over :data:`DEFAULT_ESCALATION`; ``drain_timeout`` [5 s: seconds, or a
    duration such as ``30s``; 0 waits not at all] — how long the desk, when it stops, waits for the webhooks
    to take the alerts still queued for them (:class:`AlertCourier`), and the liaison's webhooks their messages
    (within the same wait). At its default it is left out of the
    recorded config (a ledger written before it existed records the same config).
    """

    model_config = _STRICT
    sinks: tuple[SinkConfig, ...] = (LogSinkConfig(kind="log"),)
    repeat_after: int | None = None
    escalation: dict[AlertLevel, tuple[str, ...]] = Field(default_factory=dict)
    drain_timeout: float = Field(DRAIN_TIMEOUT_S, ge=0, le=600)

    @field_validator("drain_timeout", mode="before")
    @classmethod
    def _seconds(cls, value: object) -> object:
        if isinstance(value, str) and not value.strip().replace(".", "", 1).isdigit():
            match = _DURATION.match(value.strip())
            if not match:
                raise ValueError("seconds, or a duration such as 30s or 2m")
            return int(match.group(1)) * _UNIT[match.group(2)]
        return value

    @model_serializer(mode="wrap")
    def _without_defaults_added_since(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        data: dict[str, Any] = handler(self)
        if self.drain_timeout == DRAIN_TIMEOUT_S:
            data.pop("drain_timeout", None)
        return data

    @field_validator("repeat_after", mode="before")
    @classmethod
    def _duration(cls, value: object) -> int | None:
        if value is None or value == "never":
            return None
        if not isinstance(value, str | int):
            raise ValueError("a duration such as 6h, 30m or 1d, or 'never'")
        return parse_duration(value)

    @model_validator(mode="after")
    def _audiences(self) -> AlertsConfig:
        table = self.table()
        for i, sink in enumerate(self.sinks):
            if isinstance(sink, WebhookSinkConfig) and sink.to is not None:
                unknown = sorted(set(sink.to) - table.everyone)
                if unknown:
                    raise ValueError(f"sinks[{i}].to: {', '.join(unknown)} is told at no level of the escalation "
                                     f"table ({', '.join(sorted(table.everyone))})")
        return self

    def table(self) -> EscalationTable:
        try:
            return EscalationTable(self.escalation)
        except InvalidInput as exc:
            raise ValueError(str(exc)) from None


def build_router(config: AlertsConfig, record: Callable[[Alert], None], env: Mapping[str, str] = os.environ,
                 *, webhooks: bool = True, sleep: Callable[[float], None] = _time.sleep) -> AlertRouter:
    """The router the ``alerts`` section describes. Webhook URLs, header values and Telegram chat ids
    named by ``*_env`` keys are read from ``env`` (a missing one is an :class:`InvalidInput` naming
    the key and the variable, never its value). ``webhooks=False`` leaves the webhooks out (a replay
    should not page anyone). ``sleep`` is the retries' wait. Relative JSON-lines paths are taken as
    they are: resolve them against the config file first."""

    def need(where: str, name: str) -> str:
        value = env.get(name)
        if not value:
            raise InvalidInput(f"{where}: environment variable {name} is not set")
        return value

    sinks: list[AlertSink] = []
    for i, sc in enumerate(config.sinks):
        where = f"alerts.sinks[{i}]"
        if isinstance(sc, LogSinkConfig):
            sinks.append(LogSink(sc.logger, sc.min_level))
        elif isinstance(sc, JsonlSinkConfig):
            sinks.append(JsonlSink(sc.path, sc.fsync, sc.min_level))
        elif webhooks:
            url = need(f"{where}.url_env", sc.url_env)
            if urlsplit(url).scheme not in ("http", "https") or not urlsplit(url).hostname:
                raise InvalidInput(f"{where}.url_env: {sc.url_env} does not hold an http(s) URL with a host")
            headers = {h: need(f"{where}.headers_env.{h}", var) for h, var in sc.headers_env.items()}
            chat_id = sc.chat_id if sc.chat_id_env is None else need(f"{where}.chat_id_env", sc.chat_id_env)
            retry = RetryPolicy(attempts=sc.retry.attempts, base_delay_s=sc.retry.base_delay_s,
                                max_delay_s=sc.retry.max_delay_s, seed=i, sleep=sleep)
            sinks.append(WebhookSink(url, sc.format, timeout_s=sc.timeout_s, retry=retry, headers=headers,
                                     chat_id=chat_id, parse_mode=sc.parse_mode,
                                     max_retry_after_s=sc.max_retry_after_s, min_level=sc.min_level,
                                     audience=sc.to, name=sc.name))
    return AlertRouter(sinks, record, config.table(), config.repeat_after)
