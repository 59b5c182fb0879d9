"""What a crash drill compares: a desk's home reduced to what a resumed run must reproduce of an uninterrupted one.

A run killed at any moment and run again must reach the same record as a run never interrupted: the same events
in the same order — trading, alerts, messages, the report — and the same files in the home. Two kinds of event
are the restart's own record and left out: ``run.started`` (each start says where it began) and
``venue.reconciled`` (each start checks the books against the venue); a fill the restart found at the venue is
compared as the fill it is (its ``adopted`` mark dropped). Files: every file of the home but the databases
themselves (the ledger, the paper venue's book), the lock and the loop's timings for ``/metrics``
(``HOME/metrics/``: wall-clock figures, never the same twice).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from execdesk.domain.events import EventKind, canonical_json
from execdesk.store.ledger import Ledger

#: the restart's own record: not compared
RESTART_KINDS = frozenset({EventKind.RUN_STARTED, EventKind.RECONCILED})
#: the home's files that are not compared: its databases (compared as events) and the lock
NOT_COMPARED = ("ledger.sqlite", "paper-venue.sqlite", "desk.lock")
#: the home's folders that are not compared: the loop's timings (:class:`execdesk.desk.loop.BarTimes`)
NOT_COMPARED_FOLDERS = ("metrics",)


def comparable_stream(ledger: Ledger) -> list[str]:
    """Every event but the restart's own, as ``time|kind|deployment|payload`` (canonical JSON)."""
    out = []
    for e in ledger.events():
        if e.kind in RESTART_KINDS:
            continue
        payload = e.payload
        if e.kind is EventKind.ORDER_FILLED and "adopted" in payload:
            payload = {k: v for k, v in payload.items() if k != "adopted"}
        out.append(f"{e.time}|{e.kind.value}|{e.deployment_id}|{canonical_json(payload)}")
    return out


def home_files(home: Path) -> dict[str, str]:
    """Every compared file of the home (path relative to it) with the SHA-256 of its bytes."""
    out = {}
    for path in sorted(home.rglob("*")):
        relative = path.relative_to(home)
        if not path.is_file() or path.name.startswith(NOT_COMPARED) or relative.parts[0] in NOT_COMPARED_FOLDERS:
            continue
        out[relative.as_posix()] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out


def differences(reference: Path, resumed: Path, limit: int = 5) -> list[str]:
    """What ``resumed`` holds that differs from ``reference`` (both homes): the first events and files that differ,
    at most ``limit`` of each; empty when they agree."""
    with Ledger.for_home(reference) as a, Ledger.for_home(resumed) as b:
        left, right = comparable_stream(a), comparable_stream(b)
    out: list[str] = []
    for i, (x, y) in enumerate(zip(left, right, strict=False)):
        if x != y:
            out.append(f"event {i}: {x[:160]} != {y[:160]}")
            if len(out) >= limit:
                break
    if len(left) != len(right):
        out.append(f"the resumed run has {len(right)} events, the uninterrupted one {len(left)}")
    files_a, files_b = home_files(reference), home_files(resumed)
    changed = sorted(k for k in set(files_a) | set(files_b) if files_a.get(k) != files_b.get(k))
    out += [f"file {name}: " + ("missing" if name not in files_b else "extra" if name not in files_a else "differs")
            for name in changed[:limit]]
    return out
