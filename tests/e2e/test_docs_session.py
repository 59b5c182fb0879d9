"""docs/DEPLOYMENTS.md's worked session, run as written: every ``$ `` line of its command blocks in one bash process
(shell variables and background jobs carry over), in a scratch folder with a fresh home, and what each command
printed compared with the lines the doc shows under it.

The doc's blocks: a ``yaml`` block whose first line is ``# NAME`` is written to NAME where it stands; in a plain
block, a line beginning ``$ `` is a command (with its here-document, when it has one) and the lines under it, up
to the next command or the block's end, are what it printed — the last one ``[exit N]`` when it did not exit 0.

Matching (:func:`mismatch`): doc lines against printed lines, in order. A doc line ``...`` stands for any run of
lines (none included); ``...`` inside a line for any text. The tables' rules and borders (box-drawing characters
only) are left out of the printed lines, as the doc leaves them out; trailing spaces are ignored. What varies from
run to run for reasons that are not the desk's is normalised on both sides (:data:`NORMALISE`); the desk itself
is seeded, so every other figure must be the same.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "DEPLOYMENTS.md"
SECTION = "## A worked session"
#: where ``execdesk`` is: beside the Python running the tests (the project's venv)
BIN = Path(sys.executable).parent

#: characters of a table's rules and borders (rich's: the rule under a header, a boxed table's top, header rule and
#: bottom): a printed line of only these and spaces is not compared — the doc leaves them out
BORDER = set("┏┳┓┡╇┩└┴┘─━ ")
#: what varies between two runs of the same session for reasons that are not the desk's, applied to the doc's
#: lines and to the printed ones alike (each replaced by a fixed text)
NORMALISE: list[tuple[re.Pattern[str], str]] = [
    # the run summary's elapsed wall time ("... 0 denied, in 0.62 s"): the machine's speed
    (re.compile(r"\bin \d+\.\d+ s$"), "in <seconds> s"),
    # a process id (the running desk's, in "a desk is running ... (pid 16665)"): the operating system's choice
    (re.compile(r"\bpid \d+\b"), "pid <pid>"),
    # a request for a running desk is named after the wall-clock second it was made (control/pause-1795643185-000.json)
    (re.compile(r"\b([a-z_]+)-\d{9,11}-(\d{3})\.json\b"), r"\1-<time>-\2.json"),
]
MARK = "@@docs-session@@"


@dataclass
class Command:
    """One ``$ `` line of the doc (with its here-document), what the doc shows it printed, and its exit code."""

    line: int  # where it is in the doc (1-based)
    text: str
    expected: list[str] = field(default_factory=list)
    exit_code: int = 0


@dataclass
class File:
    """A ``yaml`` block naming its file in its first line (``# desk.yaml``): written where it stands."""

    line: int
    name: str
    text: str


def parse_session(markdown: str, section: str = SECTION) -> list[Command | File]:
    """The section's files and commands, in the doc's order."""
    start = markdown.index(section)
    body = markdown[start:]
    end = body.find("\n## ", len(section))
    lines = (body if end < 0 else body[:end]).splitlines()
    first = markdown[:start].count("\n") + 1
    steps: list[Command | File] = []
    i = 0
    while i < len(lines):
        fence = lines[i].strip()
        if not fence.startswith("```"):
            i += 1
            continue
        info = fence[3:].strip()
        j = i + 1
        while not lines[j].strip().startswith("```"):
            j += 1
        block = lines[i + 1:j]
        if info == "yaml":
            name = re.fullmatch(r"#\s*(\S+)\s*", block[0]) if block else None
            assert name, f"{DOC.name}:{first + i}: a yaml block names its file in its first line (# desk.yaml)"
            steps.append(File(first + i + 1, name.group(1), "\n".join(block) + "\n"))
        elif info in ("", "console", "shell-session"):
            steps.extend(_commands(block, first + i + 1))
        i = j + 1
    return steps


def _commands(block: list[str], line: int) -> list[Command]:
    commands: list[Command] = []
    k = 0
    while k < len(block):
        text = block[k]
        if not text.startswith("$ "):
            assert commands, f"{DOC.name}:{line + k}: output before any command: {text!r}"
            commands[-1].expected.append(text)
            k += 1
            continue
        command = Command(line + k, text[2:])
        heredoc = re.search(r"<<-?\s*(['\"]?)(\w+)\1", text)
        if heredoc:  # the here-document's lines are the command's, up to its delimiter
            while block[k].strip() != heredoc.group(2):
                k += 1
                command.text += "\n" + block[k]
        commands.append(command)
        k += 1
    for command in commands:
        if command.expected and (code := re.fullmatch(r"\[exit (\d+)\]", command.expected[-1].strip())):
            command.exit_code = int(code.group(1))
            command.expected.pop()
    return commands


def script(steps: list[Command | File]) -> str:
    """One bash script: each command between markers, its exit code after it (what :func:`split_output` reads)."""
    parts = []
    for n, step in enumerate(steps):
        if isinstance(step, File):
            parts.append(f"cat > {step.name} <<'{MARK}EOF'\n{step.text}{MARK}EOF")
        else:
            parts.append(f"printf '\\n{MARK} {n} begin\\n'\n{step.text}\n"
                         f"printf '\\n{MARK} {n} exit %s\\n' \"$?\"")
    return "\n".join(parts) + "\n"


def split_output(output: str) -> dict[int, tuple[list[str], int]]:
    """What each command printed (by its step's index) and its exit code, from the script's output."""
    results: dict[int, tuple[list[str], int]] = {}
    current: int | None = None
    lines: list[str] = []
    for text in output.split("\n"):
        marker = re.fullmatch(rf"{MARK} (\d+) (begin|exit)(?: (\d+))?", text)
        if marker is None:
            lines.append(text)
        elif marker.group(2) == "begin":
            current, lines = int(marker.group(1)), []
        else:
            assert current == int(marker.group(1))
            if lines and lines[-1] == "":  # the newline the exit marker put before itself
                lines.pop()
            results[current] = (lines, int(marker.group(3)))
            current, lines = None, []
    return results


# ------------------------------------------------------------------------------------------------ matching
def normalise(line: str) -> str:
    line = line.rstrip()
    for pattern, replacement in NORMALISE:
        line = pattern.sub(replacement, line)
    return line


def is_border(line: str) -> bool:
    return bool(line.strip()) and set(line) <= BORDER


def _line_pattern(doc_line: str) -> re.Pattern[str]:
    return re.compile(".*".join(re.escape(part) for part in doc_line.split("...")), re.DOTALL)


def mismatch(doc: list[str], printed: list[str]) -> str | None:
    """None when the printed lines are what the doc shows; otherwise the first doc line that could not be matched
    in order (what went before it did match)."""
    want = [normalise(line) for line in doc]
    got = [normalise(line) for line in printed if not is_border(line)]
    patterns = [None if line.strip() == "..." else _line_pattern(line) for line in want]
    # reachable[i] = the printed lines' positions j at which the first i doc lines can have matched
    reachable: set[int] = {0}
    for i, pattern in enumerate(patterns):
        if pattern is None:  # any run of lines, none included
            after = set(range(min(reachable), len(got) + 1)) if reachable else set()
        else:
            after = {j + 1 for j in reachable if j < len(got) and pattern.fullmatch(got[j])}
        if not after:
            near = min(reachable) if reachable else 0
            return (f"doc line {i + 1} {want[i]!r} not matched (after doc line {i}, at printed line {near + 1}: "
                    f"{got[near] if near < len(got) else '<end of output>'!r})")
        reachable = after
    if len(got) not in reachable:
        j = min(reachable)
        return f"the doc ends but the output goes on at printed line {j + 1}: {got[j]!r}"
    return None


# ------------------------------------------------------------------------------------------------ the session
def run_session(steps: list[Command | File], tmp_path: Path, timeout_s: float = 1200.0) -> str:
    """Run the commands in one bash in a copy of the repository's examples (the doc's commands start in the
    repository's root and go on in a ``mktemp -d`` folder under ``tmp_path``); what the bash printed."""
    clone = tmp_path / "clone"
    shutil.copytree(ROOT / "src" / "execdesk" / "examples", clone / "src" / "execdesk" / "examples",
                    ignore=shutil.ignore_patterns("__pycache__"))
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("EXECDESK_") and k not in ("FORCE_COLOR", "TTY_COMPATIBLE", "TTY_INTERACTIVE")}
    # the review cache: the test session's own (conftest.review_cache), never the user's; empty when this test runs
    # alone, so the session's first deploys review for real — the output is the same either way
    env["EXECDESK_CACHE_DIR"] = os.environ["EXECDESK_CACHE_DIR"]
    assert (BIN / "execdesk").is_file(), f"no execdesk beside {sys.executable}"
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    env["TMPDIR"] = str(scratch)
    (tmp_path / "session.sh").write_text(script(steps), encoding="utf-8")
    # a session of its own: whatever the script leaves running (a background desk) is ended with it
    proc = subprocess.Popen(["bash", str(tmp_path / "session.sh")], cwd=clone, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, text=True, start_new_session=True)
    try:
        output, _ = proc.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        output = proc.communicate()[0] + f"\n(the session was stopped after {timeout_s:.0f} s)\n"
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    (tmp_path / "session.out").write_text(output, encoding="utf-8")
    return output


def compare(steps: list[Command | File], results: dict[int, tuple[list[str], int]]) -> list[str]:
    """A report for each command whose exit code or output is not what the doc shows."""
    problems = []
    for n, step in enumerate(steps):
        if not isinstance(step, Command):
            continue
        if n not in results:
            problems.append(f"{DOC.name}:{step.line}: $ {step.text}\n  did not run to its end")
            continue
        printed, code = results[n]
        why = mismatch(step.expected, printed)
        if code != step.exit_code:
            why = f"exit {code}, the doc shows {step.exit_code}" + (f"; {why}" if why else "")
        if why:
            problems.append("\n".join([f"{DOC.name}:{step.line}: $ {step.text}", f"  {why}", "  the doc shows:",
                                       *(f"    | {line}" for line in step.expected), "  it printed:",
                                       *(f"    | {line}" for line in printed)]))
    return problems


@pytest.mark.slow
def test_worked_session_when_run_as_written_then_each_command_prints_what_the_doc_shows(tmp_path: Path) -> None:
    steps = parse_session(DOC.read_text(encoding="utf-8"))
    assert sum(isinstance(s, Command) for s in steps) > 30
    began = time.monotonic()
    output = run_session(steps, tmp_path)
    problems = compare(steps, split_output(output))
    if any("did not run to its end" in p for p in problems):
        problems.append("the session's last lines:\n" + "\n".join(output.splitlines()[-30:]))
    assert not problems, (f"{len(problems)} command(s) of the worked session differ from the doc "
                          f"(run in {time.monotonic() - began:.0f} s):\n\n" + "\n\n".join(problems))
