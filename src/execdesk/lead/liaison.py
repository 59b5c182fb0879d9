"""The lead's liaison: messages to Validation, the Orchestrator and HR, written and posted.

A :class:`~execdesk.lead.outbox.Message` is one JSON record (and its Markdown rendering) with the numbers
behind it; :class:`~execdesk.lead.outbox.Outbox` writes each to
``<root>/<to>/<YYYYMMDD-HHMMSS>-<kind>-<id8>.json`` and ``.md``, created exclusively (a message's ``id`` is
derived from its recipient, kind, subject, desk time and an optional ``key``, so a replay re-run writes the
same names and sending again is a no-op; a *different* message at a taken name is an ``OutboxConflict``).
:class:`Liaison` adds webhook posting (a JSON POST per recipient, the URL read from an environment variable,
failures returned as a :class:`~execdesk.monitor.alerts.SinkResult`, never raised). Decision requests to the
Orchestrator are :class:`~execdesk.lead.outbox.DecisionRequests`; bundles from Validation come through
:class:`~execdesk.lead.inbox.Inbox`.

No clock is read here: every time is the desk's, passed in. See ``docs/LIAISON.md``.
"""

from __future__ import annotations

import logging
import os
import time as _time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from execdesk.errors import InvalidInput
from execdesk.lead.outbox import RECIPIENTS, Message, Outbox, Recipient, Written
from execdesk.monitor.alerts import SinkResult, WebhookEndpoint, WebhookSink, redact_url
from execdesk.retry import RetryPolicy

log = logging.getLogger("execdesk.liaison")


# ------------------------------------------------------------------------------------------ webhooks


class JsonPoster(WebhookSink):
    """A JSON POST of any payload, with :class:`WebhookSink`'s delivery: ``timeout_s`` per attempt,
    ``retry`` on timeouts, connection errors, 408, 429 (Retry-After) and 5xx, the URL printed only
    redacted and scrubbed from every error."""

    def __init__(self, url: str, *, timeout_s: float = 5.0, retry: RetryPolicy | None = None,
                 headers: Mapping[str, str] | None = None, max_retry_after_s: float = 30.0,
                 name: str | None = None) -> None:
        super().__init__(url, "generic", timeout_s=timeout_s, retry=retry, headers=headers,
                         max_retry_after_s=max_retry_after_s, name=name or f"webhook@{redact_url(url)}")
        self._headers["User-Agent"] = "execdesk-liaison/1"

    def __repr__(self) -> str:
        return f"JsonPoster({redact_url(self._url)})"

    def post(self, payload: Mapping[str, Any]) -> SinkResult:
        """POST ``payload``; never raises: a failure is a :class:`SinkResult` with a scrubbed error."""
        return self.deliver(payload)


def post_json(url: str, payload: Mapping[str, Any], retry: RetryPolicy | None = None,
              timeout_s: float = 5.0) -> SinkResult:
    """One JSON POST with :class:`JsonPoster`; a bad URL is a failed result too (never raised)."""
    try:
        poster = JsonPoster(url, timeout_s=timeout_s, retry=retry)
    except InvalidInput as exc:
        return SinkResult(f"webhook@{redact_url(url)}", False, 0, None, str(exc))
    return poster.post(payload)


def webhook_payload(message: Message) -> dict[str, Any]:
    """What is posted: the message record plus ``text`` (one line, for chat webhooks) and ``markdown``."""
    return {**message.to_dict(), "text": f"[{message.kind}] {message.subject}: {message.summary}",
            "markdown": message.to_markdown()}


_STRICT = ConfigDict(extra="forbid", frozen=True)


class LiaisonWebhookConfig(WebhookEndpoint):
    """One recipient's webhook: the URL and header values are read from environment variables."""


class LiaisonConfig(BaseModel):
    """The desk config's ``liaison`` section: ``webhooks`` recipient -> :class:`LiaisonWebhookConfig`
    [none: files only]."""

    model_config = _STRICT
    webhooks: dict[Recipient, LiaisonWebhookConfig] = Field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Sent:
    """A sent message: where it is, whether it was new, and the webhook's result (None: no webhook,
    or the message was already there, so it was not posted again)."""

    message: Message
    written: Written
    delivery: SinkResult | None = None


class Liaison:
    """The outbox plus one optional :class:`JsonPoster` per recipient. A message is posted only when
    it is first written, so a replay re-run posts nothing twice."""

    def __init__(self, outbox: Outbox, posters: Mapping[str, JsonPoster] | None = None) -> None:
        self.outbox = outbox
        self.posters = dict(posters or {})
        unknown = sorted(set(self.posters) - set(RECIPIENTS))
        if unknown:
            raise InvalidInput(f"liaison webhooks: unknown recipient {unknown[0]!r}; expected {', '.join(RECIPIENTS)}")

    def send(self, message: Message) -> Sent:
        written = self.outbox.write(message)
        poster = self.posters.get(message.to)
        if poster is None or not written.created:
            return Sent(message, written)
        result = poster.post(webhook_payload(message))
        if not result.ok:
            log.warning("liaison %s %s to %s not posted by %s: %s", message.kind, message.id, message.to,
                        result.sink, result.error)
        return Sent(message, written, result)


def build_liaison(config: LiaisonConfig, root: Path | str, env: Mapping[str, str] = os.environ, *,
                  webhooks: bool = True, sleep: Callable[[float], None] = _time.sleep) -> Liaison:
    """The :class:`Liaison` for ``config`` writing under ``root``. URLs come from ``env`` (a missing
    variable is an :class:`InvalidInput` naming the key and the variable, never a value);
    ``webhooks=False`` posts nothing (a replay). ``sleep`` is the retries' wait."""

    def need(where: str, name: str) -> str:
        value = env.get(name)
        if not value:
            raise InvalidInput(f"{where}: environment variable {name} is not set")
        return value

    posters: dict[str, JsonPoster] = {}
    for seed, (to, wc) in enumerate(sorted(config.webhooks.items()) if webhooks else []):
        where = f"liaison.webhooks.{to}"
        url = need(f"{where}.url_env", wc.url_env)
        headers = {h: need(f"{where}.headers_env.{h}", var) for h, var in wc.headers_env.items()}
        retry = RetryPolicy(attempts=wc.retry.attempts, base_delay_s=wc.retry.base_delay_s,
                            max_delay_s=wc.retry.max_delay_s, seed=seed, sleep=sleep)
        try:
            posters[to] = JsonPoster(url, timeout_s=wc.timeout_s, retry=retry, headers=headers,
                                     max_retry_after_s=wc.max_retry_after_s)
        except InvalidInput:
            raise InvalidInput(f"{where}.url_env: {wc.url_env} does not hold an http(s) URL with a host") from None
    return Liaison(Outbox(root), posters)
