"""The redesign's oracle: a desk run's whole event stream reduced to one digest that does not depend on where
the checkout or the home lies, so a run here and a run in a fresh clone elsewhere compare byte for byte: absolute
paths in payloads are replaced by placeholders, and deployment request ids (``dp-`` and 12 hex digits, a hash
that includes the bundle's path) by their order of first appearance."""
from __future__ import annotations

import hashlib
import re
from collections import Counter
from pathlib import Path
from typing import Any

from execdesk.store.ledger import Ledger

REQUEST_ID = re.compile(r"\bdp-[0-9a-f]{12}\b")
EXAMPLES = Path(__file__).resolve().parents[2] / "src" / "execdesk" / "examples"


def normalized_lines(ledger: Ledger, places: dict[str, str]) -> list[str]:
    """Every recorded event as ``seq|time|kind|deployment|payload`` with each path in ``places`` replaced by its
    placeholder (longest first)."""
    order = sorted(places.items(), key=lambda kv: -len(kv[0]))
    ids: dict[str, str] = {}
    out = []
    for seq, content, _hash in ledger.event_contents():
        for path, placeholder in order:
            content = content.replace(path, placeholder)
        content = REQUEST_ID.sub(lambda m: ids.setdefault(m.group(0), f"<request-{len(ids)}>"), content)
        out.append(f"{seq}|{content}")
    return out


def stream_digest(home: Path, extra_places: dict[str, str] | None = None, db_url: str | None = None
                  ) -> dict[str, Any]:
    """The digest of the home's ledger: number of events, events per kind, and the sha256 of the normalized
    stream (and the raw chain head, which holds only for the same checkout and home paths)."""
    places = {str(EXAMPLES): "<examples>", str(home.resolve()): "<home>", **(extra_places or {})}
    with Ledger.for_home(home, db_url) as ledger:
        lines = normalized_lines(ledger, places)
        contents = ledger.event_contents()
    kinds = Counter(line.split("|", 3)[2] for line in lines)
    return {"events": len(lines), "kinds": dict(sorted(kinds.items())),
            "sha256": hashlib.sha256("\n".join(lines).encode()).hexdigest(),
            "chain_head": contents[-1][2] if contents else None}
