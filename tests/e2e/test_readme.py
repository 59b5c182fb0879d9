"""The README's first hour, run as written: its command block after the demo, each line on a fresh home (the
demo's, found without --home), each exit 0, the desk where the comments say it is."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from execdesk.store.ledger import Ledger

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]


def _first_hour() -> list[str]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    block = text.split("### The first hour, after the demo", 1)[1].split("```bash", 1)[1].split("```", 1)[0]
    commands = []
    for line in block.splitlines():
        code = line.split("#", 1)[0].strip() if not line.lstrip().startswith("#") else ""
        if code:
            commands.append(code)
    return commands


def test_readme_first_hour_when_run_as_written_then_every_command_succeeds(tmp_path: Path) -> None:
    commands = _first_hour()
    assert [c.split()[1] for c in commands] == ["status", "report", "rearm", "deploy", "demo", "kill", "demo",
                                                "rearm", "token", "serve"]
    env = {**os.environ, "EXECDESK_HOME": str(tmp_path / "home")}

    def run(line: str) -> subprocess.CompletedProcess[str]:
        args = shlex.split(line)
        assert args[0] == "execdesk"
        return subprocess.run([sys.executable, "-m", "execdesk.cli", *args[1:]], cwd=ROOT, env=env,
                              capture_output=True, text=True, timeout=600)

    demo = run("execdesk demo")
    assert demo.returncode == 0, demo.stderr
    home = tmp_path / "home" / "demo" / "seed-7"
    states = {}
    for line in commands:
        if line.startswith("execdesk serve"):
            continue  # it serves until stopped (tests/api start it)
        result = run(line)
        assert result.returncode == 0, (line, result.stderr)
        if not line.startswith("execdesk demo"):  # (the demo makes its home; the others find it)
            assert re.search(r"using the demo's, .*demo/seed-7", result.stderr), line
        with Ledger.for_home(home) as ledger:
            states[line] = ledger.state.trading_state.value
    # the comments: HALTED after the demo, ACTIVE once re-armed, HALTED again by the drill's kill, ACTIVE at the end
    assert states["execdesk status"] == "HALTED"
    assert states['execdesk rearm --reason "breaker reviewed"'] == "ACTIVE"
    assert states["execdesk demo --until 2024-10-22"] == "HALTED"
    assert states['execdesk rearm --reason "drill over"'] == "ACTIVE"
    with Ledger.for_home(home) as ledger:
        assert any(f.deployment_id == "STR-001-v2" for f in ledger.state.fills.values())


def test_readme_python_block_when_run_as_written_then_the_demo_and_its_status(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    block = text.split("```python\n", 1)[1].split("```", 1)[0]
    monkeypatch.chdir(tmp_path)  # its paths are relative: .execdesk here

    exec(compile(block, "README.md", "exec"), {})

    printed = capsys.readouterr().out.splitlines()
    assert printed[0].startswith("HALTED [")  # the demo's circuit breaker
    assert "'id': 'STR-001-v1'" in printed[1]
    assert (tmp_path / ".execdesk" / "demo" / "seed-7" / "ledger.sqlite").is_file()
