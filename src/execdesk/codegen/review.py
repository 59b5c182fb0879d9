"""Review of a generated strategy: the checks it must pass before anyone runs it.

:func:`review` writes the strategy to ``out_dir`` (if it is not already there, byte for byte),
runs the checks on the *written file* and writes ``review.json`` and ``review.md`` beside it.
The checks, in order:

1. ``compiles`` — ``compile()`` of the source (nothing is executed);
2. ``ruff`` — ``python -m ruff check --isolated`` on the file with the fixed rule set
   :data:`RUFF_RULES` (``E W F B UP N S``: pycodestyle errors and warnings, pyflakes, bugbear,
   pyupgrade, pep8-naming, bandit), line length 120, target py311 — independent of any project's
   ruff settings;
3. ``ast_audit`` — :func:`execdesk.codegen.audit.audit_source` against the whitelist the renderer
   derived from the bundle (see :mod:`execdesk.codegen.audit` for the rules);
4. ``freqtrade_load`` — Freqtrade's own ``StrategyResolver`` loads the class in a subprocess and
   runs its populate methods through Freqtrade's checks over seeded candles (offline). The file is
   executed only if checks 1 and 3 passed: code that fails the audit is never run;
5. ``freqtrade_attributes`` — the attributes Freqtrade sees (timeframe, stoploss, minimal_roi,
   trailing stop, startup candles, can_short, INTERFACE_VERSION) equal the bundle's.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from execdesk.codegen.audit import audit_source
from execdesk.codegen.render import LINE_LENGTH, GeneratedStrategy
from execdesk.errors import ExecdeskError
from execdesk.freqtrade.runner import load_strategy

#: The ruff rules every generated strategy must pass (see the module docstring).
RUFF_RULES: Final = ("E", "W", "F", "B", "UP", "N", "S")
RUFF_ARGS: Final = (
    "check",
    "--isolated",
    "--no-cache",
    "--select",
    ",".join(RUFF_RULES),
    "--line-length",
    str(LINE_LENGTH),
    "--target-version",
    "py311",
    "--output-format",
    "json",
)
SMOKE_EXTRA_CANDLES: Final = 300


@dataclass(frozen=True, slots=True)
class CheckResult:
    """One check: its name, whether it passed, a human detail, optional structured data."""

    name: str
    passed: bool
    detail: str
    data: Mapping[str, Any] | None = None
    duration_s: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        """JSON-safe form."""
        out: dict[str, Any] = {"name": self.name, "passed": self.passed, "detail": self.detail}
        if self.data is not None:
            out["data"] = dict(self.data)
        out["duration_s"] = round(self.duration_s, 3)
        return out


def checks_table(checks: Sequence[CheckResult]) -> list[str]:
    """The checks as a Markdown table (header included), one row each."""
    lines = ["| check | result | detail |", "|---|---|---|"]
    for c in checks:
        detail = c.detail.replace("|", "\\|").replace("\n", "<br>")
        lines.append(f"| {c.name} | {'pass' if c.passed else '**FAIL**'} | {detail} |")
    return lines


class ChecksLookup:
    """Lookups shared by the reports that hold a tuple of :class:`CheckResult` as ``checks``."""

    __slots__ = ()
    checks: tuple[CheckResult, ...]

    @property
    def failed(self) -> list[str]:
        """Names of the checks that failed."""
        return [c.name for c in self.checks if not c.passed]

    def check(self, name: str) -> CheckResult:
        """The check called ``name`` (KeyError if there is none)."""
        for c in self.checks:
            if c.name == name:
                return c
        raise KeyError(name)


@dataclass(frozen=True, slots=True)
class ReviewReport(ChecksLookup):
    """All review checks of one generated strategy file."""

    strategy_file: Path
    class_name: str
    bundle_id: str
    bundle_version: int
    bundle_hash: str
    checks: tuple[CheckResult, ...]
    files: Mapping[str, Path] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        """Whether every check passed."""
        return all(c.passed for c in self.checks)

    def as_dict(self) -> dict[str, Any]:
        """JSON-safe form (what ``review.json`` holds)."""
        return {
            "strategy_file": self.strategy_file.name,
            "class_name": self.class_name,
            "bundle": {"id": self.bundle_id, "version": self.bundle_version, "sha256": self.bundle_hash},
            "passed": self.passed,
            "failed": self.failed,
            "ruff_rules": list(RUFF_RULES),
            "checks": [c.as_dict() for c in self.checks],
        }

    def to_markdown(self) -> str:
        """Human form (what ``review.md`` holds)."""
        verdict = "PASSED" if self.passed else "FAILED: " + ", ".join(self.failed)
        lines = [
            f"# Review of {self.strategy_file.name} ({self.class_name})",
            "",
            f"Bundle {self.bundle_id} v{self.bundle_version}, sha256 `{self.bundle_hash}`.",
            "",
            f"**{verdict}**",
            "",
            *checks_table(self.checks),
        ]
        lines += ["", f"ruff rules: {', '.join(RUFF_RULES)} (line length {LINE_LENGTH}, --isolated)", ""]
        return "\n".join(lines)


def review(
    generated: GeneratedStrategy,
    out_dir: Path,
    *,
    freqtrade: bool = True,
    timeout_s: float = 120.0,
) -> ReviewReport:
    """Run the checks of the module docstring on ``out_dir/<generated.filename>``.

    Writes the strategy file when missing or different, then ``review.json`` and ``review.md``.
    ``freqtrade=False`` skips the Freqtrade checks (reported as failed, "skipped on request"), for
    callers that cannot run subprocesses; a real review keeps them.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / generated.filename
    if not path.is_file() or path.read_text(encoding="utf-8") != generated.source:
        path.write_text(generated.source, encoding="utf-8")
    source = path.read_text(encoding="utf-8")
    checks: list[CheckResult] = [_compiles(source, path), _ruff(path), _audit(source, generated)]
    safe = checks[0].passed and checks[2].passed
    if not freqtrade:
        skipped = "skipped on request (freqtrade=False)"
        checks += [CheckResult("freqtrade_load", False, skipped), CheckResult("freqtrade_attributes", False, skipped)]
    elif not safe:
        skipped = "not run: the file failed compile or the AST audit, so it is never executed"
        checks += [CheckResult("freqtrade_load", False, skipped), CheckResult("freqtrade_attributes", False, skipped)]
    else:
        checks += _freqtrade(path, generated, timeout_s)
    files = {"strategy": path, "review_json": out_dir / "review.json", "review_md": out_dir / "review.md"}
    report = ReviewReport(
        strategy_file=path,
        class_name=generated.class_name,
        bundle_id=generated.bundle_id,
        bundle_version=generated.bundle_version,
        bundle_hash=generated.bundle_hash,
        checks=tuple(checks),
        files=files,
    )
    files["review_json"].write_text(json.dumps(report.as_dict(), indent=2, sort_keys=False) + "\n", encoding="utf-8")
    files["review_md"].write_text(report.to_markdown(), encoding="utf-8")
    return report


# -- checks ------------------------------------------------------------------------------------


def _compiles(source: str, path: Path) -> CheckResult:
    start = time.perf_counter()
    try:
        compile(source, str(path), "exec", dont_inherit=True)
    except SyntaxError as exc:
        return CheckResult(
            "compiles", False, f"line {exc.lineno}: {exc.msg}", {"line": exc.lineno}, time.perf_counter() - start
        )
    except ValueError as exc:  # e.g. a NUL byte
        return CheckResult("compiles", False, str(exc), None, time.perf_counter() - start)
    return CheckResult("compiles", True, "compile() succeeded", None, time.perf_counter() - start)


def _ruff(path: Path) -> CheckResult:
    start = time.perf_counter()
    cmd = [sys.executable, "-m", "ruff", *RUFF_ARGS, str(path)]
    rules = ",".join(RUFF_RULES)
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=False)  # noqa: S603
    except (OSError, subprocess.TimeoutExpired) as exc:
        return CheckResult("ruff", False, f"ruff could not run: {exc}", None, time.perf_counter() - start)
    elapsed = time.perf_counter() - start
    try:
        findings = json.loads(proc.stdout or "[]")
    except ValueError:
        findings = None
    if proc.returncode not in (0, 1) or not isinstance(findings, list):
        tail = (proc.stderr or proc.stdout).strip()[-500:]
        return CheckResult("ruff", False, f"ruff failed (exit {proc.returncode}): {tail}", None, elapsed)
    if not findings:
        return CheckResult("ruff", True, f"clean ({rules}, line length {LINE_LENGTH})", {"rules": rules}, elapsed)
    shown = [f"line {f.get('location', {}).get('row')}: {f.get('code')} {f.get('message')}" for f in findings[:20]]
    return CheckResult(
        "ruff", False, f"{len(findings)} finding(s): " + "; ".join(shown), {"rules": rules, "findings": shown}, elapsed
    )


def _audit(source: str, generated: GeneratedStrategy) -> CheckResult:
    start = time.perf_counter()
    findings = audit_source(source, generated.allowed)
    elapsed = time.perf_counter() - start
    if not findings:
        return CheckResult(
            "ast_audit", True, "no finding (imports, calls, names, nodes on the whitelist)", None, elapsed
        )
    shown = [str(f) for f in findings[:30]]
    return CheckResult(
        "ast_audit",
        False,
        f"{len(findings)} finding(s): " + "; ".join(shown),
        {"findings": [f.as_dict() for f in findings]},
        elapsed,
    )


def _freqtrade(path: Path, generated: GeneratedStrategy, timeout_s: float) -> list[CheckResult]:
    start = time.perf_counter()
    startup = generated.expected.get("startup_candle_count", 0)
    smoke = (startup if isinstance(startup, int) else 0) + SMOKE_EXTRA_CANDLES
    try:
        loaded = load_strategy(
            path, generated.class_name, pairs=generated.pairs, smoke_candles=smoke, timeout_s=timeout_s
        )
    except ExecdeskError as exc:  # unavailable, timeout, load error with its reason, run error
        elapsed = time.perf_counter() - start
        failed = CheckResult("freqtrade_load", False, str(exc), {"error": type(exc).__name__}, elapsed)
        return [failed, CheckResult("freqtrade_attributes", False, "not checked: Freqtrade did not load the class")]
    elapsed = time.perf_counter() - start
    load_ok = loaded.class_name == generated.class_name and loaded.connection_attempts == 0
    signals = {pair: dict(counts) for pair, counts in (loaded.smoke or {}).items()}
    detail = (
        f"Freqtrade {loaded.freqtrade_version} loaded {loaded.class_name} "
        f"(import {loaded.timings.get('import_s', 0):.2f} s, load {loaded.timings.get('load_s', 0):.3f} s); "
        f"populate methods ran on {smoke} seeded candles per pair; "
        f"{loaded.connection_attempts} network connection attempt(s)"
    )
    load_check = CheckResult(
        "freqtrade_load",
        load_ok,
        detail,
        {"timings": dict(loaded.timings), "smoke": signals, "connection_attempts": loaded.connection_attempts},
        elapsed,
    )
    mismatches = []
    for name, want in generated.expected.items():
        got = loaded.attributes.get(name)
        if name == "minimal_roi" and isinstance(got, Mapping) and isinstance(want, Mapping):
            got = {int(k): float(v) for k, v in got.items()}
            want = {int(k): float(v) for k, v in want.items()}
        if got != want:
            mismatches.append(f"{name}: Freqtrade sees {got!r}, the bundle says {want!r}")
    attr_check = CheckResult(
        "freqtrade_attributes",
        not mismatches,
        "; ".join(mismatches) if mismatches else f"{len(generated.expected)} attributes as the bundle specifies",
        {"loaded": dict(loaded.attributes)},
    )
    return [load_check, attr_check]
