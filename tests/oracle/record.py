"""Build the oracle: ``python -m tests.oracle.record [CAPTURE_DIR]``.

With a capture folder (see ``capture.py``), its configs become cases (deduplicated, only those whose files are
all shipped examples or captured bundles); then every case is run twice on fresh homes — a case whose two runs
differ is not deterministic and is dropped, said — and the digests are written to ``digests.json``."""

from __future__ import annotations

import hashlib
import json
import sys
import tempfile
from pathlib import Path

from tests.oracle.cases import CASES, DIGESTS, case_names, run_case
from tests.oracle.streams import EXAMPLES


def take_capture(folder: Path) -> None:
    CASES.mkdir(exist_ok=True)
    seen = {p.read_text() for p in CASES.glob("*.json")}
    for path in sorted(folder.glob("*.json")):
        cap = json.loads(path.read_text())
        tmp = str(Path(cap["home"]).parent)
        config = cap["config"]
        if config["market"].get("datadir") or config["venue"].get("kind") != "paper" or config["clock"] != "replay":
            print(f"skip {path.name} ({cap['test']}): not a replay on generated candles")
            continue
        bundles = {}
        for s in config["strategies"]:
            b = s["bundle"]
            if b.startswith(str(EXAMPLES)):
                s["bundle"] = b.replace(str(EXAMPLES), "<examples>")
            elif b.startswith(tmp):
                rel = Path(b).relative_to(tmp).as_posix()
                bundles[rel] = cap["bundles"][b]
                s["bundle"] = f"<tmp>/{rel}"
            else:
                print(f"skip {path.name}: bundle {b} outside the test's folder")
                break
        else:
            text = json.dumps({"config": config, "bundles": bundles}, indent=1, sort_keys=True).replace(tmp, "<tmp>")
            if text in seen:
                continue
            seen.add(text)
            name = hashlib.sha256(text.encode()).hexdigest()[:12]
            (CASES / f"{name}.json").write_text(text + "\n")
            print(f"case {name} from {cap['test']}")


def main() -> None:
    if len(sys.argv) > 1:
        take_capture(Path(sys.argv[1]))
    digests = {}
    for name in case_names():
        with tempfile.TemporaryDirectory() as a, tempfile.TemporaryDirectory() as b:
            first, second = run_case(name, Path(a)), run_case(name, Path(b))
        if first["sha256"] != second["sha256"]:
            print(f"DROP {name}: two runs differ")
            (CASES / f"{name}.json").unlink(missing_ok=True)
            continue
        first.pop("chain_head", None)
        digests[name] = first
        print(f"{name}: {first['events']} events {first['sha256'][:16]}")
    DIGESTS.write_text(json.dumps(digests, indent=1, sort_keys=True) + "\n")


if __name__ == "__main__":
    main()
