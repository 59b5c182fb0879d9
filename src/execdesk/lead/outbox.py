"""The outbox: structured messages to Validation, the Orchestrator and HR as files (JSON and Markdown, written
once, never overwritten), and the Orchestrator's decision requests with their answers. File I/O only: posting
to webhooks is the liaison's (:mod:`execdesk.lead.liaison`)."""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from enum import Enum
from pathlib import Path
from typing import Any, Literal, Protocol

from execdesk.errors import ExecdeskError, InvalidInput

Recipient = Literal["validation", "orchestrator", "hr"]


RECIPIENTS: tuple[str, ...] = ("validation", "orchestrator", "hr")


#: Every message kind and who receives it.
KINDS: dict[str, str] = {
    "live_feedback": "validation",
    "revalidation_request": "validation",
    "portfolio_status": "orchestrator",
    "escalation": "orchestrator",
    "decision_request": "orchestrator",
    "team_performance": "hr",
    "capacity_flag": "hr",
}


SCHEMA = "execdesk.liaison/1"


DECISIONS = "decisions"


_REQUEST_ID = re.compile(r"^dr-[0-9a-f]{12}$")


_OPTION = re.compile(r"^[a-z][a-z0-9_]{0,31}$")


class OutboxConflict(ExecdeskError):
    """A different message (or a stray file) already holds the name a message would be written to."""


class AlreadyAnswered(InvalidInput):
    """A decision request was answered before; the message names the first answer."""


def message_id(to: str, kind: str, subject: str, time: int, key: str = "") -> str:
    """16 hex digits of ``sha256(to|kind|subject|time|key)``: the same message gets the same id."""
    return hashlib.sha256(f"{to}|{kind}|{subject}|{time}|{key}".encode()).hexdigest()[:16]


def _json_safe(value: Any, where: str) -> Any:
    """``value`` as plain JSON data: Decimal -> str (exact), Enum -> value, datetime -> ISO-8601,
    Path -> str, set -> sorted list, non-finite float -> "NaN" / "Infinity" / "-Infinity"."""
    if value is None or isinstance(value, str | bool | int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else ("NaN" if math.isnan(value) else
                                                   ("Infinity" if value > 0 else "-Infinity"))
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, Enum):
        return _json_safe(value.value, where)
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, Mapping):
        out: dict[str, Any] = {}
        for k, v in value.items():
            if not isinstance(k, str):
                raise InvalidInput(f"{where}: key {k!r} is a {type(k).__name__}; expected a string")
            out[k] = _json_safe(v, f"{where}.{k}")
        return out
    if isinstance(value, set | frozenset):
        return sorted((_json_safe(v, f"{where}[]") for v in value), key=lambda v: json.dumps(v, sort_keys=True))
    if isinstance(value, list | tuple):
        return [_json_safe(v, f"{where}[{i}]") for i, v in enumerate(value)]
    raise InvalidInput(f"{where}: a {type(value).__name__} is not JSON data; expected numbers, text, lists, mappings")


def _iso(t: int) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class Message:
    """One message. ``time`` epoch seconds on the desk's clock; ``to`` validation | orchestrator | hr
    (must match :data:`KINDS` for ``kind``); ``subject`` a deployment / strategy id or ``"portfolio"``;
    ``summary`` one line; ``body`` the evidence (made plain JSON data, see :func:`_json_safe`);
    ``options`` the answers a ``decision_request`` accepts (none for other kinds); ``key`` tells apart
    two messages of one kind and subject at one time (a decision request's question). ``id`` is
    :func:`message_id`, computed; ``request_id`` is ``dr-<id12>`` for a decision request."""

    time: int
    to: str
    kind: str
    subject: str
    summary: str
    body: Mapping[str, Any] = field(default_factory=dict)
    options: tuple[str, ...] = ()
    key: str = ""
    id: str = field(init=False)

    def __post_init__(self) -> None:
        if isinstance(self.time, bool) or not isinstance(self.time, int) or self.time < 0:
            raise InvalidInput(f"message time: got {self.time!r}; expected epoch seconds (an int >= 0)")
        if self.kind not in KINDS:
            raise InvalidInput(f"message kind: got {self.kind!r}; expected one of {', '.join(KINDS)}")
        if self.to != KINDS[self.kind]:
            raise InvalidInput(f"message to: a {self.kind} goes to {KINDS[self.kind]}, not {self.to!r}")
        for name in ("subject", "summary"):
            text = getattr(self, name)
            if not isinstance(text, str) or not text.strip() or "\n" in text or "\r" in text:
                raise InvalidInput(f"message {name}: got {text!r}; expected one non-empty line")
        if not isinstance(self.body, Mapping):
            raise InvalidInput(f"message body: got a {type(self.body).__name__}; expected a mapping")
        object.__setattr__(self, "body", _json_safe(self.body, "body"))
        options = tuple(self.options)
        object.__setattr__(self, "options", options)
        if self.kind == "decision_request":
            bad = [o for o in options if not isinstance(o, str) or not _OPTION.match(o)]
            if not options or bad or len(set(options)) != len(options):
                raise InvalidInput(f"message options: got {list(options)!r}; expected distinct lower-case words, "
                                   "e.g. ['approve', 'deny']")
        elif options:
            raise InvalidInput(f"message options: only a decision_request has options, not a {self.kind}")
        object.__setattr__(self, "id", message_id(self.to, self.kind, self.subject, self.time, self.key))

    @property
    def request_id(self) -> str | None:
        """``dr-<first 12 hex of id>`` for a decision request (what ``execdesk approve`` takes), else None."""
        return _request_id(self.id) if self.kind == "decision_request" else None

    @property
    def stem(self) -> str:
        """The file name without suffix: ``<YYYYMMDD-HHMMSS>-<kind>-<id8>`` (UTC)."""
        stamp = datetime.fromtimestamp(self.time, UTC).strftime("%Y%m%d-%H%M%S")
        return f"{stamp}-{self.kind}-{self.id[:8]}"

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"schema": SCHEMA, "id": self.id, "time": self.time, "time_iso": _iso(self.time),
                               "to": self.to, "kind": self.kind, "subject": self.subject, "summary": self.summary,
                               "body": dict(self.body)}
        if self.key:
            out["key"] = self.key
        if self.kind == "decision_request":
            out["request_id"] = self.request_id
            out["options"] = list(self.options)
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], source: str = "<message>") -> Message:
        """The message a :meth:`to_dict` record describes; its stored ``id`` must match the content."""
        try:
            message = cls(time=data["time"], to=data["to"], kind=data["kind"], subject=data["subject"],
                          summary=data["summary"], body=data.get("body", {}), options=tuple(data.get("options", ())),
                          key=data.get("key", ""))
        except (KeyError, TypeError) as exc:
            raise InvalidInput(f"{source}: not a liaison message ({type(exc).__name__}: {exc})") from None
        except InvalidInput as exc:
            raise InvalidInput(f"{source}: {exc}") from None
        if data.get("id") != message.id:
            raise InvalidInput(f"{source}: id {data.get('id')!r} does not match its content ({message.id})")
        return message

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True, ensure_ascii=False, allow_nan=False) + "\n"

    def to_markdown(self) -> str:
        """Title, summary, the body's top-level figures as a table, the evidence as a fenced JSON block."""
        lines = [f"# {self.kind.replace('_', ' ').capitalize()}: {_md(self.subject)}", "",
                 f"**{_md(self.summary)}**", "",
                 f"- to: {self.to}", f"- time: {_iso(self.time)} ({self.time})", f"- id: `{self.id}`"]
        if self.kind == "decision_request":
            lines += [f"- request: `{self.request_id}`", f"- options: {', '.join(self.options)}"]
            if set(self.options) <= {"approve", "deny"}:  # the CLI's verbs
                lines += ["", "Answer with " + " or ".join(f"`execdesk {o} {self.request_id}`" for o in self.options)]
        figures = [(k, v) for k, v in sorted(self.body.items()) if not isinstance(v, dict | list)]
        if figures:
            lines += ["", "| figure | value |", "| --- | --- |"]
            lines += [f"| {_md(k)} | {_md(v if isinstance(v, str) else json.dumps(v))} |" for k, v in figures]
        evidence = json.dumps(dict(self.body), indent=2, sort_keys=True, ensure_ascii=False)
        fence = "`" * max(3, 1 + max((len(m) for m in re.findall(r"`+", evidence)), default=0))
        lines += ["", "## Evidence", "", f"{fence}json", evidence, fence, ""]
        return "\n".join(lines)


def _request_id(message_id: str) -> str:
    return f"dr-{message_id[:12]}"


def _md(value: object) -> str:
    return str(value).replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")


@dataclass(frozen=True, slots=True)
class Written:
    """Where a message is, and whether this call created it (False: it was there already)."""

    json_path: Path
    md_path: Path
    created: bool


def _create(path: Path, text: str) -> bool:
    """Write ``text`` to ``path`` only if ``path`` does not exist; True if written, False if the same
    text is already there; :class:`OutboxConflict` if something else is. The text is written to a
    hidden temporary file and linked into place, so a reader never sees half a message."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with tmp.open("x", encoding="utf-8") as handle:
            handle.write(text)
        try:
            os.link(tmp, path)  # atomic and exclusive
        except FileExistsError:
            pass
        except OSError:  # a file system without hard links: exclusive create in place
            try:
                with path.open("x", encoding="utf-8") as handle:
                    handle.write(text)
                return True
            except FileExistsError:
                pass
        else:
            return True
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
    if path.read_text(encoding="utf-8") == text:
        return False
    raise OutboxConflict(f"{path}: already holds different content; nothing was overwritten")


class Outbox:
    """Messages as files under ``root``: ``<to>/<stem>.json`` and ``<to>/<stem>.md`` (see :attr:`Message.stem`)."""

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root)

    def paths(self, message: Message) -> tuple[Path, Path]:
        folder = self.root / message.to
        return folder / f"{message.stem}.json", folder / f"{message.stem}.md"

    def names(self, message: Message) -> list[str]:
        """:meth:`paths` relative to the outbox, as the ledger records them (the same run in another home records
        the same event)."""
        return [p.relative_to(self.root).as_posix() for p in self.paths(message)]

    def write(self, message: Message) -> Written:
        """Write ``message`` (JSON first, then Markdown) unless it is there already: idempotent by id;
        a different file at either name is an :class:`OutboxConflict`."""
        json_path, md_path = self.paths(message)
        created = _create(json_path, message.to_json())
        created_md = _create(md_path, message.to_markdown())  # also completes a write cut short before it
        return Written(json_path, md_path, created or created_md)

    def send(self, message: Message) -> tuple[Path, Path]:
        """:meth:`write`; the JSON and Markdown paths."""
        written = self.write(message)
        return written.json_path, written.md_path

    def sweep(self) -> list[Path]:
        """Remove the temporary files a writer killed mid-message left (``.<name>.<pid>.tmp`` of a process no longer
        running); the paths removed."""
        from execdesk.safefiles import pid_alive

        removed = []
        for recipient in RECIPIENTS:
            for path in (self.root / recipient).glob(".*.tmp"):
                pid = path.name.rsplit(".", 2)[-2]
                if pid.isdigit() and not pid_alive(int(pid)):
                    path.unlink(missing_ok=True)
                    removed.append(path)
        return removed

    def list(self, to: str | None = None, kind: str | None = None) -> list[Message]:
        """The messages written (to one recipient / of one kind), in time order (then file name)."""
        if to is not None and to not in RECIPIENTS:
            raise InvalidInput(f"outbox to: got {to!r}; expected one of {', '.join(RECIPIENTS)}")
        found: list[tuple[int, str, Message]] = []
        for recipient in (to,) if to else RECIPIENTS:
            folder = self.root / recipient
            if not folder.is_dir():
                continue
            for path in folder.glob("*.json"):
                if path.name.startswith(".") or (kind is not None and f"-{kind}-" not in path.name):
                    continue
                message = self._read(path)
                if kind is None or message.kind == kind:
                    found.append((message.time, path.name, message))
        return [m for _t, _n, m in sorted(found, key=lambda item: (item[0], item[1]))]

    @staticmethod
    def _read(path: Path) -> Message:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise InvalidInput(f"{path}: unreadable message ({exc})") from None
        if not isinstance(data, dict):
            raise InvalidInput(f"{path}: not a liaison message (a {type(data).__name__})")
        return Message.from_dict(data, str(path))


@dataclass(frozen=True, slots=True)
class Decision:
    """An answer to a decision request: which option, by whom, at what (desk) time."""

    request_id: str
    subject: str
    decision: str
    by: str
    time: int

    def to_dict(self) -> dict[str, Any]:
        return {"schema": SCHEMA, "request_id": self.request_id, "subject": self.subject,
                "decision": self.decision, "by": self.by, "time": self.time, "time_iso": _iso(self.time)}


class Posting(Protocol):
    """An outbox that also posts what it writes (:class:`execdesk.lead.liaison.Liaison`)."""

    outbox: Outbox

    def send(self, message: Message) -> object: ...


def decision_request(time: int, subject: str, question: str, evidence: Mapping[str, Any],
                     options: Sequence[str] = ("approve", "deny")) -> Message:
    """A ``decision_request`` to the Orchestrator (summary: the question; body: question + evidence); the same
    question about the same subject at the same time is the same request."""
    return Message(time, "orchestrator", "decision_request", subject, question,
                   {"question": question, "evidence": dict(evidence)}, tuple(options), key=question)


class DecisionRequests:
    """Decision requests to the Orchestrator and their answers, on an :class:`Outbox` (or a
    :class:`Liaison`, which also posts the request). Answers live in ``<root>/decisions/<request_id>.json``."""

    def __init__(self, sender: Outbox | Posting) -> None:
        self.sender = sender
        self.outbox = sender if isinstance(sender, Outbox) else sender.outbox

    def request(self, time: int, subject: str, question: str, evidence: Mapping[str, Any],
                options: Sequence[str] = ("approve", "deny")) -> str:
        """Write a ``decision_request`` (summary: the question; body: question + evidence); its request id.
        The same question about the same subject at the same time is the same request."""
        message = decision_request(time, subject, question, evidence, options)
        self.sender.send(message)
        return _request_id(message.id)

    def find(self, request_id: str) -> Message:
        """The request ``request_id``; :class:`InvalidInput` if there is none."""
        if not isinstance(request_id, str) or not _REQUEST_ID.match(request_id):
            raise InvalidInput(f"request id: got {request_id!r}; expected dr- and 12 hex digits")
        folder = self.outbox.root / "orchestrator"
        for path in sorted(folder.glob(f"*-decision_request-{request_id[3:11]}.json")):
            message = Outbox._read(path)
            if message.request_id == request_id:
                return message
        raise InvalidInput(f"request id {request_id}: no such decision request in {folder}")

    def answer(self, request_id: str, decision: str, by: str, time: int) -> Decision:
        """Record the answer, once: answering again is :class:`AlreadyAnswered` naming the first answer."""
        message = self.find(request_id)
        if decision not in message.options:
            raise InvalidInput(f"{request_id}: decision {decision!r}; expected one of {', '.join(message.options)}")
        if not by or "\n" in by:
            raise InvalidInput(f"{request_id}: by {by!r}; expected who answers (one line)")
        if isinstance(time, bool) or not isinstance(time, int) or time < message.time:
            raise InvalidInput(f"{request_id}: answer time {time!r}; expected epoch seconds >= the request's "
                               f"{message.time}")
        answer = Decision(request_id, message.subject, decision, by, time)
        path = self._path(request_id)
        path.parent.mkdir(parents=True, exist_ok=True)
        text = json.dumps(answer.to_dict(), indent=2, sort_keys=True, ensure_ascii=False) + "\n"
        try:
            with path.open("x", encoding="utf-8") as handle:
                handle.write(text)
        except FileExistsError:
            first = self._load(path)
            raise AlreadyAnswered(f"{request_id}: already answered {first.decision!r} by {first.by} at "
                                  f"{_iso(first.time)}") from None
        return answer

    def answer_of(self, request_id: str) -> Decision | None:
        """The answer to ``request_id``, or None while it is pending (:class:`InvalidInput` if unknown)."""
        self.find(request_id)
        path = self._path(request_id)
        return self._load(path) if path.exists() else None

    def given(self, request_id: str) -> Decision | None:
        """The answer recorded for ``request_id``, or None (the request itself is not looked for: the desk asks
        about requests it recorded, whose file may not be written yet)."""
        path = self._path(request_id)
        return self._load(path) if path.exists() else None

    def pending(self) -> list[Message]:
        """The unanswered requests, in time order."""
        return [m for m in self.outbox.list("orchestrator", "decision_request")
                if m.request_id and not self._path(m.request_id).exists()]

    def _path(self, request_id: str) -> Path:
        return self.outbox.root / DECISIONS / f"{request_id}.json"

    @staticmethod
    def _load(path: Path) -> Decision:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            return Decision(data["request_id"], data["subject"], data["decision"], data["by"], int(data["time"]))
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise InvalidInput(f"{path}: unreadable decision ({type(exc).__name__}: {exc})") from None
