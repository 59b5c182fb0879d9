"""The docs' examples against the code, on plain inputs: every `execdesk` line in a command block names a command
and options that command has; every YAML block validates as what it shows (a bundle, a desk config, or a section
of one); every Python block compiles and names what exists. The blocks that run whole are run elsewhere:
DEPLOYMENTS.md's worked session (tests/e2e/test_docs_session.py), the README's first hour and its Python block
(tests/e2e/test_readme.py), AGENTS.md's client (tests/api/test_agent_tools.py)."""

from __future__ import annotations

import ast
import importlib
import inspect
import re
from pathlib import Path
from typing import Any

import pytest
import typer.main
import yaml

from execdesk.cli import app
from execdesk.desk.settings import DeskConfig
from execdesk.strategy.bundle import validate_bundle

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.MULTILINE | re.DOTALL)


def blocks(*languages: str) -> list[tuple[str, str]]:
    """``(where, text)`` of every fenced block in one of ``languages`` ("" = no language named)."""
    found = []
    for doc in DOCS:
        text = doc.read_text(encoding="utf-8")
        for match in FENCE.finditer(text):
            if match.group(1) in languages:
                line = text.count("\n", 0, match.start()) + 1
                found.append((f"{doc.relative_to(ROOT)}:{line}", match.group(2)))
    return found


def command_lines() -> list[tuple[str, str]]:
    """Every ``execdesk ...`` command in the docs' shell blocks and session transcripts (``$ execdesk ...``), its
    continuation lines (indented ``[--option ...]``) joined, comments dropped."""
    lines = []
    for where, text in blocks("bash", "sh", ""):
        current: str | None = None
        for raw in text.splitlines():
            code = raw.split(" #", 1)[0].rstrip()
            stripped = code.strip()
            if current is not None and stripped.startswith("["):
                current += " " + stripped
                continue
            if current is not None:
                lines.append((where, current))
                current = None
            found = re.search(r"(?:^|\$ |\$\(|^\w+=\S* )(execdesk \w.*)", stripped)
            if found and (stripped.startswith(("execdesk", "$ ")) or "=" in stripped.split()[0]):
                current = found.group(1)
        if current is not None:
            lines.append((where, current))
    return lines


CLI: Any = typer.main.get_command(app)  # a click group (typer's own click): .commands, each .params


def test_docs_when_read_then_there_are_commands_blocks_and_python_to_check() -> None:
    assert len(command_lines()) > 60
    assert len(blocks("yaml")) >= 6
    assert len(blocks("python")) >= 4


@pytest.mark.parametrize(("where", "line"), command_lines())
def test_every_execdesk_line_in_the_docs_names_a_command_and_options_it_has(where: str, line: str) -> None:
    words = line.replace("[", " ").replace("]", " ").split()
    known = set(CLI.commands)
    assert all(name in known for name in words[1].split("|")), f"{where}: `{line}`: no command {words[1]!r}"
    commands = [CLI.commands[name] for name in words[1].split("|")]
    if hasattr(commands[0], "commands"):  # a group: token create|list|revoke
        subs = [w for w in words[2].replace("|", " ").split()]
        missing = [s for s in subs if s not in commands[0].commands]
        assert not missing, f"{where}: `{line}`: `execdesk {words[1]}` has no {missing}"
        commands = [commands[0].commands[s] for s in subs]
    for command in commands:
        options = {opt for p in command.params for opt in (*p.opts, *p.secondary_opts)} | {"--help"}
        used = {w.split("=", 1)[0].rstrip(")") for w in words if w.startswith("--")}  # ($(execdesk ... --quiet))
        assert used <= options, f"{where}: `{line}`: `{command.name}` has no {sorted(used - options)}"


DEMO = yaml.safe_load((ROOT / "src" / "execdesk" / "examples" / "demo.yaml").read_text(encoding="utf-8"))


@pytest.mark.parametrize(("where", "text"), blocks("yaml"))
def test_every_yaml_block_in_the_docs_validates_as_what_it_shows(where: str, text: str) -> None:
    data = yaml.safe_load(text)
    assert isinstance(data, dict), where
    if "entry" in data:  # a strategy bundle
        validate_bundle(data, where)
    elif "desk" in data:  # a whole desk config
        DeskConfig.model_validate(data)
    else:  # sections of one: over the demo's config
        assert set(data) <= set(DeskConfig.model_fields), f"{where}: not a desk config section: {sorted(data)}"
        DeskConfig.model_validate({**DEMO, **data})


def _names(tree: ast.Module) -> dict[str, Any]:
    """What the block imports, imported."""
    names: dict[str, Any] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            module = importlib.import_module(node.module)
            for alias in node.names:
                if not hasattr(module, alias.name):  # a submodule (from execdesk.api import actions)
                    importlib.import_module(f"{node.module}.{alias.name}")
                assert hasattr(module, alias.name), f"{node.module} has no {alias.name}"
                names[alias.asname or alias.name] = getattr(module, alias.name)
        elif isinstance(node, ast.Import):
            for alias in node.names:
                names[alias.asname or alias.name] = importlib.import_module(alias.name)
    return names


def _callee(node: ast.expr, names: dict[str, Any]) -> Any:
    """``a.b.c`` for an imported ``a``, resolved; None for anything else (a local, a call's result)."""
    if isinstance(node, ast.Name):
        return names.get(node.id)
    if isinstance(node, ast.Attribute):
        owner = _callee(node.value, names)
        if owner is None:
            return None
        assert hasattr(owner, node.attr), f"{getattr(owner, '__name__', owner)} has no {node.attr}"
        return getattr(owner, node.attr)
    return None


@pytest.mark.parametrize(("where", "text"), blocks("python"))
def test_every_python_block_in_the_docs_compiles_and_calls_what_exists_with_arguments_it_takes(
        where: str, text: str) -> None:
    tree = ast.parse(text)  # (top-level await is a notebook's or asyncio REPL's: ast accepts it)
    compile(text, where, "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
    names = _names(tree)
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        target = _callee(node.func, names)
        if target is None or not callable(target):
            continue
        try:
            signature = inspect.signature(target)
        except (TypeError, ValueError):
            continue  # a builtin without one
        args = [None] * sum(not isinstance(a, ast.Starred) for a in node.args)
        kwargs = {k.arg: None for k in node.keywords if k.arg is not None}
        try:
            signature.bind(*args, **kwargs)
        except TypeError as exc:
            raise AssertionError(f"{where}: {ast.unparse(node.func)}{signature}: {exc}") from None


def test_every_file_a_docs_command_names_is_in_the_repository() -> None:
    named = set()
    for _, text in blocks("bash", "sh", ""):
        named |= set(re.findall(r"(?<![\w/.-])((?:scripts|benchmarks|src/execdesk)/[\w./-]+\.(?:sh|py|yaml))", text))
    assert {"scripts/demo.sh", "scripts/test.sh", "benchmarks/run.py"} <= named
    missing = sorted(path for path in named if not (ROOT / path).is_file())
    assert not missing, f"the docs run files that are not here: {missing}"
