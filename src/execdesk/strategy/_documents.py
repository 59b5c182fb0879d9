"""Reading one YAML or JSON document from disk, defensively.

Every failure becomes a :class:`~execdesk.errors.SpecError` whose issue path is ``<file>`` (the
file itself: missing, too large, binary, not UTF-8, empty) or the ``line L, column C`` of a syntax
error. YAML is read with the safe loader, plus two refusals a strategy spec benefits from:
duplicate keys (a second ``stoploss:`` silently winning is a trading hazard) and aliases (a tiny
"billion laughs" document could otherwise expand into an enormous structure during validation).
"""

from __future__ import annotations

import json
import stat
from pathlib import Path
from typing import Any

import yaml
from yaml.composer import ComposerError
from yaml.constructor import ConstructorError
from yaml.events import AliasEvent
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from execdesk.errors import FieldIssue, SpecError
from execdesk.strategy._issues import short_repr

MAX_BYTES = 1 << 20
MAX_NESTING = 16
SUFFIXES = (".yaml", ".yml", ".json")
FILE = "<file>"


def fail(source: object, path: str, value: str, expected: str) -> SpecError:
    """A SpecError with a single issue."""
    return SpecError(str(source), [FieldIssue(path, value, expected)])


def read_document(path: Path) -> Any:
    """The parsed content of a ``.yaml``/``.yml``/``.json`` file (never None).

    Generic: also used for the desk config, so messages name no bundle field.
    """
    try:
        info = path.stat()
    except FileNotFoundError:
        raise fail(path, FILE, repr(str(path)), "an existing file or folder") from None
    except OSError as exc:
        raise fail(path, FILE, repr(str(path)), f"a readable file ({exc.strerror})") from None
    if not stat.S_ISREG(info.st_mode):
        raise fail(path, FILE, repr(str(path)), "a regular file")
    if info.st_size > MAX_BYTES:
        raise fail(path, FILE, f"{info.st_size} bytes", f"at most {MAX_BYTES} bytes (1 MiB)")
    try:
        with path.open("rb") as handle:
            raw = handle.read(MAX_BYTES + 1)  # bounded even if the file grew since stat()
    except OSError as exc:
        raise fail(path, FILE, repr(str(path)), f"a readable file ({exc.strerror})") from None
    if len(raw) > MAX_BYTES:
        raise fail(path, FILE, f"more than {MAX_BYTES} bytes", f"at most {MAX_BYTES} bytes (1 MiB)")
    text = _decode(path, raw)
    if not text.strip():
        raise fail(path, FILE, "an empty file", "a YAML or JSON mapping")
    data = _parse_json(path, text) if path.suffix.lower() == ".json" else _parse_yaml(path, text)
    if data is None:
        raise fail(path, FILE, "no document (only comments or blank lines)", "a YAML or JSON mapping")
    _check_nesting(path, data)
    return data


def _decode(path: Path, raw: bytes) -> str:
    nul = raw.find(b"\x00")
    if nul >= 0:
        raise fail(path, FILE, f"binary data (NUL byte at offset {nul})", "a UTF-8 text file")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        bad = raw[exc.start]
        raise fail(path, FILE, f"byte 0x{bad:02x} at offset {exc.start}", "UTF-8 text") from None
    return text.removeprefix("\ufeff")


class _Loader(yaml.SafeLoader):
    """SafeLoader refusing aliases and duplicate mapping keys."""

    def compose_node(self, parent: Node | None, index: int) -> Node | None:
        if self.check_event(AliasEvent):
            event = self.peek_event()
            raise ComposerError(None, None, "aliases (*name) are not allowed", event.start_mark)
        return super().compose_node(parent, index)

    def construct_mapping(self, node: MappingNode, deep: bool = False) -> dict[Any, Any]:
        _refuse_duplicate_keys(node)
        return super().construct_mapping(node, deep=deep)


def _refuse_duplicate_keys(node: MappingNode) -> None:
    seen: set[tuple[str, str]] = set()
    for key_node, _ in node.value:
        if isinstance(key_node, ScalarNode):
            key = (key_node.tag, key_node.value)
            if key in seen:
                raise ConstructorError(None, None, f"duplicate key {key_node.value!r}", key_node.start_mark)
            seen.add(key)


def _load_yaml(text: str) -> Any:
    if not yaml.__with_libyaml__:
        return yaml.load(text, Loader=_Loader)  # noqa: S506 - _Loader is a SafeLoader
    # libyaml parses ~8x faster than the pure-Python loader (a hostile 1 MiB file takes 0.5 s
    # instead of 5 s); its composer cannot be subclassed, so the refusals run on the node tree.
    node = yaml.compose(text, Loader=yaml.CSafeLoader)
    if node is None:
        return None
    _check_nodes(node)
    return yaml.SafeLoader("").construct_document(node)


def _check_nodes(root: Node) -> None:
    # libyaml hands an alias back as the very node object its anchor named: a node met twice is
    # an alias (reported at the anchor, the only position the node knows).
    seen: set[int] = set()
    stack: list[Node] = [root]
    while stack:
        node = stack.pop()
        if id(node) in seen:
            raise ComposerError(None, None, "anchors and aliases (&name, *name) are not allowed", node.start_mark)
        seen.add(id(node))
        if isinstance(node, MappingNode):
            _refuse_duplicate_keys(node)
            for key_node, value_node in node.value:
                stack.extend((key_node, value_node))
        elif isinstance(node, SequenceNode):
            stack.extend(node.value)


def _parse_yaml(path: Path, text: str) -> Any:
    try:
        return _load_yaml(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        problem = exc.problem or exc.context or "invalid YAML"
        if mark is None:
            raise fail(path, "<yaml>", short_repr(str(exc)), f"valid YAML ({problem})") from None
        lines = text.splitlines()
        line = lines[mark.line] if mark.line < len(lines) else ""
        where = f"line {mark.line + 1}, column {mark.column + 1}"
        raise fail(path, where, short_repr(line.strip()), f"valid YAML ({problem})") from None
    except yaml.YAMLError as exc:  # e.g. a ReaderError for a control character
        raise fail(path, "<yaml>", short_repr(str(exc)), "valid YAML") from None
    except RecursionError:
        raise fail(path, "<yaml>", "deeply nested collections", "a shallow mapping") from None
    except ValueError as exc:  # e.g. an integer literal beyond Python's digit limit
        raise fail(path, "<yaml>", short_repr(str(exc)), "valid YAML values") from None


class _DuplicateKey(ValueError):
    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise _DuplicateKey(key)
        out[key] = value
    return out


def _parse_json(path: Path, text: str) -> Any:
    try:
        return json.loads(text, object_pairs_hook=_no_duplicates)
    except json.JSONDecodeError as exc:
        line = text.splitlines()[exc.lineno - 1] if exc.lineno - 1 < len(text.splitlines()) else ""
        where = f"line {exc.lineno}, column {exc.colno}"
        raise fail(path, where, short_repr(line.strip()), f"valid JSON ({exc.msg})") from None
    except _DuplicateKey as exc:
        raise fail(path, "<json>", repr(exc.key), "unique keys (this key appears twice)") from None
    except RecursionError:
        raise fail(path, "<json>", "deeply nested collections", "a shallow mapping") from None
    except ValueError as exc:
        raise fail(path, "<json>", short_repr(str(exc)), "valid JSON values") from None


def _check_nesting(path: Path, data: Any) -> None:
    # Iterative, so the check itself cannot recurse; a bundle needs four levels at most.
    stack: list[tuple[Any, list[str]]] = [(data, [])]
    while stack:
        value, where = stack.pop()
        if len(where) > MAX_NESTING:
            label = ".".join(where[:MAX_NESTING]) + "..."
            raise fail(path, label, "deeper nesting", f"at most {MAX_NESTING} levels of nesting")
        if isinstance(value, dict):
            stack.extend((v, [*where, str(k)]) for k, v in value.items())
        elif isinstance(value, list):
            stack.extend((v, [*where, str(i)]) for i, v in enumerate(value))
