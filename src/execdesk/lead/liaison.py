"""The lead's liaison: messages to Validation, the Orchestrator and HR, written and posted.

A :class:`~execdesk.lead.outbox.Message` is one JSON record (and its Markdown rendering) with the numbers
behind it; :class:`~execdesk.lead.outbox.Outbox` writes each to
``<root>/<to>/<YYYYMMDD-HHMMSS>-<kind>-<id8>.json`` and ``.md``, created exclusively (a message's ``id`` is
derived from its recipient, kind, subject, desk time and an optional ``key``, so a replay re-run writes the
same names and sending again is a no-op; a *different* message at a taken name is an ``OutboxConflict``).
:class:`Liaison` adds webhook posting (a JSON POST per recipient, the URL read from an environment variable,
failures returned as a :class:`~execdesk.monitor.alerts.SinkResult`, never raised) — with a
:class:`LiaisonCourier`, off the caller's thread: the file is written at once, the post queued (a queue and a
worker per recipient), its result taken back by :meth:`Liaison.collect`. Decision requests to the
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
from typing import Any, Protocol

from pydantic import BaseModel, ConfigDict, Field

from execdesk.errors import InvalidInput
from execdesk.lead.outbox import RECIPIENTS, Message, Outbox, Recipient, Written
from execdesk.monitor.alerts import Courier, SinkResult, WebhookEndpoint, WebhookSink, redact_url
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


class Poster(Protocol):
    """What posts a recipient's messages: a :class:`JsonPoster`, or an :class:`UnsetWebhook`."""

    name: str

    def post(self, payload: Mapping[str, Any]) -> SinkResult: ...

    def scrub(self, text: str) -> str: ...


class UnsetWebhook:
    """A recipient's webhook this process cannot post to (its environment variable is not set, or holds no http(s)
    URL): every post fails, saying why — a liaison built with ``missing_ok`` (a command on a stopped desk): the
    message is recorded and written, its post recorded as failed and tried again later."""

    def __init__(self, to: str, error: str) -> None:
        self.name = f"webhook:{to}"
        self.error = error

    def post(self, payload: Mapping[str, Any]) -> SinkResult:
        return SinkResult(self.name, False, 0, None, self.error)

    def scrub(self, text: str) -> str:
        return text


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
    or the message was already there, so it was not posted again, or ``queued``: handed to the liaison's
    courier, its result to come by :meth:`Liaison.collect`)."""

    message: Message
    written: Written
    delivery: SinkResult | None = None
    queued: bool = False


def _warn_unposted(message: Message, result: SinkResult) -> None:
    log.warning("liaison %s %s to %s not posted by %s: %s", message.kind, message.id, message.to, result.sink,
                result.error)


class _Post:
    """A recipient's :class:`JsonPoster` as a courier's carrier: ``send(message)`` posts its webhook payload."""

    def __init__(self, poster: Poster) -> None:
        self.poster = poster
        self.name = poster.name

    def send(self, message: Message, /) -> SinkResult:
        return self.poster.post(webhook_payload(message))

    def scrub(self, text: str) -> str:
        return self.poster.scrub(text)


class LiaisonCourier(Courier[Message]):
    """Posts the liaison's messages off the caller's thread: a queue and a worker per recipient (a webhook that
    hangs holds up only its recipient's messages, each recipient's in the order sent), a bounded wait when closed
    (``drain_timeout_s``, the desk's ``alerts.drain_timeout``), what is left reported (see
    :class:`~execdesk.monitor.alerts.Courier`)."""

    kind = "liaison"

    def warn(self, item: Message, result: SinkResult) -> None:
        _warn_unposted(item, result)


class Liaison:
    """The outbox plus one optional :class:`JsonPoster` per recipient. A message is posted only when
    it is first written, so a replay re-run posts nothing twice.

    Without a :attr:`courier` the post is made by :meth:`send` itself (it waits for the webhook, its retries
    included). With one, :meth:`send` writes the files and queues the post; what the posts came to is taken back
    on the caller's thread by :meth:`collect` and, when the caller stops, :meth:`close_courier` (a bounded wait,
    then a failure for each post left over): each failure logged as a warning, as a failed post of
    :meth:`send`'s own is."""

    def __init__(self, outbox: Outbox, posters: Mapping[str, Poster] | None = None,
                 courier: LiaisonCourier | None = None) -> None:
        self.outbox = outbox
        self.posters = dict(posters or {})
        unknown = sorted(set(self.posters) - set(RECIPIENTS))
        if unknown:
            raise InvalidInput(f"liaison webhooks: unknown recipient {unknown[0]!r}; expected {', '.join(RECIPIENTS)}")
        #: when set, the webhooks are posted by it, off the caller's thread (see the class docstring)
        self.courier = courier

    def send(self, message: Message) -> Sent:
        """Write ``message``'s files; when they are new and its recipient has a webhook, post it (or, with a
        :attr:`courier`, queue the post: ``Sent.queued``)."""
        written = self.outbox.write(message)
        poster = self.posters.get(message.to)
        if poster is None or not written.created:
            return Sent(message, written)
        if self.courier is not None:
            self.courier.put(message, _Post(poster), lane=message.to)
            return Sent(message, written, queued=True)
        result = poster.post(webhook_payload(message))
        if not result.ok:
            _warn_unposted(message, result)
        return Sent(message, written, result)

    def post(self, message: Message) -> SinkResult | None:
        """Post ``message`` to its recipient's webhook now, whatever its files (a post that failed before, tried
        again), waiting for it (never through the :attr:`courier`); None when the recipient has no webhook. A
        failure is logged and returned, never raised."""
        poster = self.posters.get(message.to)
        if poster is None:
            return None
        result = poster.post(webhook_payload(message))
        if not result.ok:
            _warn_unposted(message, result)
        return result

    def collect(self) -> list[tuple[Message, SinkResult]]:
        """What the :attr:`courier` posted or failed since the last call (never waits); each failure logged."""
        if self.courier is None:
            return []
        return self._settle(self.courier.done())

    def close_courier(self, timeout_s: float | None = None, *,
                      until: float | None = None) -> list[tuple[Message, SinkResult]]:
        """Close the :attr:`courier` (a bounded wait, ``timeout_s`` or ``until``: see
        :meth:`~execdesk.monitor.alerts.Courier.close`) and settle what it returns as :meth:`collect` does — a
        post it left over is a failure like any other."""
        if self.courier is None:
            return []
        return self._settle(self.courier.close(timeout_s, until=until))

    @staticmethod
    def _settle(done: list[tuple[Message, SinkResult]]) -> list[tuple[Message, SinkResult]]:
        for message, result in done:
            if not result.ok:
                _warn_unposted(message, result)
        return done


def build_liaison(config: LiaisonConfig, root: Path | str, env: Mapping[str, str] = os.environ, *,
                  webhooks: bool = True, sleep: Callable[[float], None] = _time.sleep,
                  courier: LiaisonCourier | None = None, missing_ok: bool = False) -> Liaison:
    """The :class:`Liaison` for ``config`` writing under ``root``. URLs come from ``env`` (a missing
    variable is an :class:`InvalidInput` naming the key and the variable, never a value);
    ``webhooks=False`` posts nothing (a replay). ``sleep`` is the retries' wait. ``courier``: the webhooks are
    posted by it, off the caller's thread (whoever gives it closes it: :meth:`Liaison.close_courier`).
    ``missing_ok``: a recipient whose variables are missing or hold no URL gets an :class:`UnsetWebhook` instead
    of the error (its posts fail, saying why: a command on a stopped desk records them to be tried again)."""

    def need(where: str, name: str) -> str:
        value = env.get(name)
        if not value:
            raise InvalidInput(f"{where}: environment variable {name} is not set")
        return value

    posters: dict[str, Poster] = {}
    for seed, (to, wc) in enumerate(sorted(config.webhooks.items()) if webhooks else []):
        where = f"liaison.webhooks.{to}"
        try:
            url = need(f"{where}.url_env", wc.url_env)
            headers = {h: need(f"{where}.headers_env.{h}", var) for h, var in wc.headers_env.items()}
            retry = RetryPolicy(attempts=wc.retry.attempts, base_delay_s=wc.retry.base_delay_s,
                                max_delay_s=wc.retry.max_delay_s, seed=seed, sleep=sleep)
            try:
                posters[to] = JsonPoster(url, timeout_s=wc.timeout_s, retry=retry, headers=headers,
                                         max_retry_after_s=wc.max_retry_after_s)
            except InvalidInput:
                raise InvalidInput(f"{where}.url_env: {wc.url_env} does not hold an http(s) URL with a host"
                                   ) from None
        except InvalidInput as exc:
            if not missing_ok:
                raise
            posters[to] = UnsetWebhook(to, str(exc))
    return Liaison(Outbox(root), posters, courier)
