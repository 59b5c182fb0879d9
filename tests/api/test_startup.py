"""Fast start: the everyday commands import only what they use — never numba, scipy, matplotlib, Alembic's
command machinery or Freqtrade (their start-up time is benchmarks/bench_startup.py's)."""

from __future__ import annotations

import json
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest

from tests.conftest import BUNDLES
from tests.kit import desk_ledger

HEAVY = ("numba", "scipy", "matplotlib", "alembic.command", "freqtrade", "execdesk.desk.loop", "execdesk.backtest")
PROBE = """
import json, sys
from execdesk.cli import app
try:
    app(sys.argv[1:], standalone_mode=False)
except SystemExit:
    pass
print(json.dumps(sorted({m for m in sys.modules for h in HEAVY if m == h or m.startswith(h + ".")})), file=sys.stderr)
""".replace("HEAVY", repr(HEAVY))


def _heavy_imported(*args: str) -> list[str]:
    out = subprocess.run([sys.executable, "-c", PROBE, *args], capture_output=True, text=True, timeout=120)
    return json.loads(out.stderr.strip().splitlines()[-1])


@pytest.fixture
def home(tmp_path: Path) -> Path:
    desk_ledger(tmp_path / "home", "STR-001-v1", ["BTC/USDT"], Decimal(10_000)).close()
    return tmp_path / "home"


def test_status_when_run_then_no_heavy_module_is_imported(home: Path) -> None:
    assert _heavy_imported("status", "--home", str(home), "--json") == []


def test_intake_when_run_then_no_heavy_module_is_imported() -> None:
    assert _heavy_imported("intake", str(BUNDLES / "trend_ema_cross.yaml"), "--json") == []


def test_help_when_run_then_no_heavy_module_is_imported() -> None:
    assert _heavy_imported("--help") == []
