"""The oracle's cases: the demo for seeds 1-5 and every desk config the test suite runs (captured once with
``tests/oracle/capture.py``, stored in ``tests/oracle/cases/`` with the test's temporary folder as ``<tmp>`` and
the shipped examples as ``<examples>``), each run on a fresh home and reduced to its stream digest."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests.oracle.streams import EXAMPLES, stream_digest

HERE = Path(__file__).resolve().parent
CASES = HERE / "cases"
DIGESTS = HERE / "digests.json"
DEMO_SEEDS = (1, 2, 3, 4, 5)


def case_names() -> list[str]:
    return [f"demo-seed-{s}" for s in DEMO_SEEDS] + sorted(p.stem for p in CASES.glob("*.json"))


def run_case(name: str, root: Path) -> dict[str, Any]:
    """Run the case ``name`` on a fresh home under ``root``; its digest."""
    if name.startswith("demo-seed-"):
        from execdesk.api import actions

        seed = int(name.rsplit("-", 1)[1])
        summary = actions.run_demo(root, seed=seed)
        return stream_digest(summary.home)
    case = json.loads((CASES / f"{name}.json").read_text())
    tmp = root / "tmp"
    for rel, text in case["bundles"].items():
        path = tmp / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    raw = json.dumps(case["config"]).replace("<tmp>", str(tmp)).replace("<examples>", str(EXAMPLES))
    from execdesk.desk.runner import run_desk
    from execdesk.desk.settings import DeskConfig

    home = tmp / "home"
    run_desk(DeskConfig.model_validate(json.loads(raw)), home)
    return stream_digest(home, {str(tmp): "<tmp>"})
