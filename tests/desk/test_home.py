"""Finding a desk's home: the one named, or — when it holds no desk — the demo's run last under it."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest
from typer.testing import CliRunner

from execdesk.cli import app
from execdesk.desk.home import DEMO_LATEST, mark_latest_demo, resolve_home
from tests.kit import desk_ledger


def _demo_home(root: Path, seed: int = 7) -> Path:
    demo_home = root / "demo" / f"seed-{seed}"
    desk_ledger(demo_home, "STR-001-v1", ["BTC/USDT"], Decimal(10_000)).close()
    mark_latest_demo(root, demo_home)
    return demo_home


def test_resolve_home_when_the_home_holds_a_desk_then_itself(tmp_path: Path) -> None:
    desk_ledger(tmp_path, "STR-001-v1", ["BTC/USDT"], Decimal(10_000)).close()
    _demo_home(tmp_path)
    assert resolve_home(tmp_path) == (tmp_path, False)


def test_resolve_home_when_no_desk_but_a_demo_ran_under_it_then_the_demos(tmp_path: Path) -> None:
    _demo_home(tmp_path, seed=3)
    demo_home = _demo_home(tmp_path, seed=7)
    assert (tmp_path / "demo" / DEMO_LATEST).read_text() == "seed-7\n"
    assert resolve_home(tmp_path) == (demo_home, True)


@pytest.mark.parametrize("pointer", ["seed-9\n", "../../etc\n", "seed-7/../x", "", "\xff"])
def test_resolve_home_when_the_pointer_names_no_demo_desk_then_the_home_as_named(tmp_path: Path, pointer: str) -> None:
    _demo_home(tmp_path)
    (tmp_path / "demo" / DEMO_LATEST).write_text(pointer, encoding="latin-1")
    assert resolve_home(tmp_path) == (tmp_path, False)


def test_status_when_no_home_given_after_a_demo_then_the_demos_desk_said_on_stderr(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("EXECDESK_HOME", raising=False)
    _demo_home(tmp_path / ".execdesk")
    result = CliRunner().invoke(app, ["status", "--json"])
    assert result.exit_code == 0, result.output
    assert '"trading_state"' in result.stdout
    assert "using the demo's, .execdesk/demo/seed-7" in result.stderr


def test_status_when_no_desk_and_no_demo_then_exit_2_naming_the_home(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["status", "--home", str(tmp_path / "nothing")])
    assert result.exit_code == 2
    assert "no ledger here" in result.stderr
