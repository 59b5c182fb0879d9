"""AST audit of a generated strategy: only what the template can produce may be in the file.

The audit parses the source with :mod:`ast` (it never runs it) and reports every violation of
these rules, each with its line and column:

* **syntax**: the file must parse.
* **nodes**: only the node types the template uses are allowed — module, imports, one class, its
  methods, assignments, ``if``/``return``, calls, attribute access, ``dataframe[...]`` subscripts,
  arithmetic, comparisons, ``& | ~``, constants, tuples and dicts. Everything else (``for``,
  ``while``, ``with``, ``try``, ``lambda``, comprehensions, f-strings, ``global``, ``del``, ``*args``,
  decorators, ``and``/``or``/``not``, slices, lists, sets, ``await``, ``yield``, ...) is rejected.
* **imports** (at module level only): ``from __future__ import annotations``, ``from datetime import
  datetime``, ``import numpy as np``, ``import talib as ta``, ``from freqtrade.strategy import
  IStrategy``, ``from pandas import DataFrame`` — nothing else, no other aliases, no ``*``, no
  relative imports. ``datetime``, ``DataFrame``, ``dict``, ``str``, ``float`` and ``object`` may only appear in
  annotations (so no ``datetime.now()``, no frames built from nothing).
* **calls**: never ``exec eval open compile __import__ getattr setattr delattr globals locals vars
  breakpoint input ...``; a call by bare name only to ``abs``, ``min``, ``len``; anything else must be
  a method on a whitelisted attribute (``ta.EMA``, ``np.arange``, ``.shift``, ...).
* **modules**: no ``os sys subprocess socket pathlib importlib shutil ctypes builtins ...`` anywhere
  (as an import or a name).
* **dunders**: no identifier or attribute starting with ``__`` (the ``__future__`` import aside);
  Freqtrade needs no class-level dunder.
* **names**: builtins, imports and the method parameters are never re-bound; every identifier,
  attribute, keyword argument and ``dataframe[...]`` key must be on the whitelist derived from the
  bundle (:class:`~execdesk.codegen.render.AuditNames`): indicator outputs and OHLCV columns as
  keys, ``dataframe``/``metadata``/``self``, the template's own identifiers and the ``param_*``
  attributes.
* **strings**: outside docstrings, a string constant must be short and plain
  (``[A-Za-z0-9_./:-]``), and bare expression statements other than docstrings are not allowed.
* **class**: exactly one class, deriving from ``IStrategy`` with no keywords (no metaclass).

A strategy rendered with the desk's pre-trade check (``AuditNames.desk_check``) may also hold exactly that
check, and only inside its method ``confirm_trade_entry`` (:data:`~execdesk.codegen.render.DESK_CHECK_METHOD`):

* the imports ``import json``, ``import logging``, ``import urllib.request`` (no alias; ``urllib`` stays a
  forbidden module for every other strategy and anywhere else);
* ``try``/``except Exception as <name>`` and ``not in``; calls of ``int`` and ``str``; ``desk[...]`` and
  ``answer[...]`` with a plain string key;
* ``urllib.request.urlopen`` only, and only on ``"http://127.0.0.1:" + str(int(...)) + "/pretrade"`` (the
  host is fixed in code, the port an integer); ``json.dumps``/``json.loads``; ``logging.getLogger``;
* the check's names, attributes and keyword arguments (:data:`~execdesk.codegen.render.DESK_CHECK_NAMES`,
  ``..._ATTRIBUTES``, ``..._KEYWORDS``) — outside the method they are refused like any unknown name;
* the check's two log lines (:data:`~execdesk.codegen.render.DESK_CHECK_MESSAGES`), exactly, as the only
  strings with spaces.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from typing import Final

from execdesk.codegen.render import (
    DESK_CHECK_ATTRIBUTES,
    DESK_CHECK_HOST,
    DESK_CHECK_IMPORTS,
    DESK_CHECK_KEYWORDS,
    DESK_CHECK_MESSAGES,
    DESK_CHECK_METHOD,
    DESK_CHECK_NAMES,
    DESK_CHECK_PATH,
    TEMPLATE_ATTRIBUTES,
    TEMPLATE_NAMES,
    AuditNames,
)

#: ``from <module> import <name>`` pairs the template may use.
ALLOWED_FROM_IMPORTS: Final = frozenset(
    {
        ("__future__", "annotations"),
        ("datetime", "datetime"),
        ("freqtrade.strategy", "IStrategy"),
        ("pandas", "DataFrame"),
    }
)
#: ``import <module> as <alias>``: the module and its required alias.
ALLOWED_IMPORTS: Final = {"numpy": "np", "talib": "ta"}
#: Names that may appear in annotations only.
ANNOTATION_ONLY: Final = frozenset({"datetime", "DataFrame", "dict", "str", "float", "object"})
#: Names that may never be assigned to (builtins, imports and parameters the template relies on).
NOT_REBINDABLE: Final = frozenset(
    {"abs", "min", "len", "int", "float", "str", "dict", "object", "np", "ta", "IStrategy", "DataFrame"}
    | {"datetime", "annotations", "self", "dataframe", "metadata"}
    | {"json", "logging", "urllib", "bool", "Exception"}
)
#: Builtins the template calls by name.
CALLABLE_NAMES: Final = frozenset({"abs", "min", "len"})
FORBIDDEN_CALLS: Final = frozenset(
    {
        "exec",
        "eval",
        "open",
        "compile",
        "__import__",
        "getattr",
        "setattr",
        "delattr",
        "hasattr",
        "globals",
        "locals",
        "vars",
        "dir",
        "breakpoint",
        "input",
        "help",
        "exit",
        "quit",
        "memoryview",
        "type",
        "super",
    }
)
FORBIDDEN_MODULES: Final = frozenset(
    {
        "os",
        "sys",
        "subprocess",
        "socket",
        "pathlib",
        "importlib",
        "shutil",
        "ctypes",
        "builtins",
        "pickle",
        "marshal",
        "io",
        "threading",
        "multiprocessing",
        "asyncio",
        "urllib",
        "http",
        "requests",
        "tempfile",
        "glob",
        "inspect",
        "gc",
    }
)
_ALLOWED_NODES: Final[tuple[type[ast.AST], ...]] = (
    ast.Module,
    ast.ImportFrom,
    ast.Import,
    ast.alias,
    ast.ClassDef,
    ast.FunctionDef,
    ast.arguments,
    ast.arg,
    ast.Return,
    ast.Assign,
    ast.Expr,
    ast.If,
    ast.Constant,
    ast.Name,
    ast.Load,
    ast.Store,
    ast.Attribute,
    ast.Subscript,
    ast.Call,
    ast.keyword,
    ast.BinOp,
    ast.UnaryOp,
    ast.Compare,
    ast.Dict,
    ast.Tuple,
    # operators
    ast.Add,
    ast.Sub,
    ast.Mult,
    ast.Div,
    ast.Pow,
    ast.BitAnd,
    ast.BitOr,
    ast.Invert,
    ast.USub,
    ast.UAdd,
    ast.Lt,
    ast.LtE,
    ast.Gt,
    ast.GtE,
    ast.Eq,
    ast.NotEq,
    ast.Is,
    ast.IsNot,
)
_PLAIN_STRING = re.compile(r"[A-Za-z0-9_./:-]{0,64}")

# -- the desk's pre-trade check: what it may use, inside its method only ------------------------------------
_DESK_NODES: Final[tuple[type[ast.AST], ...]] = (ast.Try, ast.ExceptHandler, ast.NotIn)
#: its own names, attributes and keywords (those the rest of the template uses as well are not restricted)
_DESK_ONLY_NAMES: Final = DESK_CHECK_NAMES - TEMPLATE_NAMES - {DESK_CHECK_METHOD, "bool"}
_DESK_ONLY_ATTRIBUTES: Final = DESK_CHECK_ATTRIBUTES - TEMPLATE_ATTRIBUTES
_DESK_CALLABLE: Final = frozenset({"int", "str"})
#: the attributes each of its modules may be used for
_DESK_MODULE_ATTRIBUTES: Final = {"json": frozenset({"dumps", "loads"}), "logging": frozenset({"getLogger"}),
                                  "urllib": frozenset({"request"})}
_DESK_SUBSCRIPTED: Final = frozenset({"desk", "answer"})
_DESK_MESSAGES: Final = frozenset(DESK_CHECK_MESSAGES.values())


@dataclass(frozen=True, slots=True)
class AuditFinding:
    """One violation: the rule broken, where (1-based line, 0-based column) and what was found."""

    rule: str
    line: int
    column: int
    message: str

    def __str__(self) -> str:
        return f"line {self.line}, col {self.column}: [{self.rule}] {self.message}"

    def as_dict(self) -> dict[str, object]:
        """JSON-safe form."""
        return {"rule": self.rule, "line": self.line, "column": self.column, "message": self.message}


def audit_source(source: str, allowed: AuditNames) -> list[AuditFinding]:
    """Every rule violation of ``source`` (empty when it passes); see the module docstring."""
    try:
        tree = ast.parse(source, type_comments=False)
    except SyntaxError as exc:
        return [AuditFinding("syntax", exc.lineno or 0, (exc.offset or 1) - 1, f"does not parse: {exc.msg}")]
    return _Auditor(allowed).run(tree)


class _Auditor:
    def __init__(self, allowed: AuditNames) -> None:
        self.allowed = allowed
        self.findings: list[AuditFinding] = []
        self.annotation_nodes: set[int] = set()
        self.docstrings: set[int] = set()
        self.desk_nodes: set[int] = set()  # the nodes of the desk check's method (desk_check strategies)
        self.desk_callees: set[int] = set()  # the ``int``/``str`` names it calls

    def add(self, node: ast.AST, rule: str, message: str) -> None:
        line = getattr(node, "lineno", 0)
        column = getattr(node, "col_offset", 0)
        self.findings.append(AuditFinding(rule, line, column, message))

    def run(self, tree: ast.Module) -> list[AuditFinding]:
        self._mark(tree)
        classes = [n for n in tree.body if isinstance(n, ast.ClassDef)]
        if len(classes) != 1:
            self.add(tree, "class", f"expected exactly one class, found {len(classes)}")
        for stmt in tree.body:
            if not isinstance(stmt, ast.Import | ast.ImportFrom | ast.ClassDef) and id(stmt) not in self.docstrings:
                self.add(stmt, "nodes", f"module-level {type(stmt).__name__} statement is not allowed")
        for node in ast.walk(tree):
            self._visit(node, tree)
        self.findings.sort(key=lambda f: (f.line, f.column, f.rule, f.message))
        return self.findings

    def _mark(self, tree: ast.Module) -> None:
        if self.allowed.desk_check:
            for cls in (n for n in tree.body if isinstance(n, ast.ClassDef)):
                for method in cls.body:
                    if isinstance(method, ast.FunctionDef) and method.name == DESK_CHECK_METHOD:
                        self.desk_nodes.update(id(n) for n in ast.walk(method))
            for node in ast.walk(tree):
                if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
                        and node.func.id in _DESK_CALLABLE and id(node) in self.desk_nodes):
                    self.desk_callees.add(id(node.func))
        for node in ast.walk(tree):
            if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef):
                body = node.body
                first = body[0] if body else None
                if (
                    isinstance(first, ast.Expr)
                    and isinstance(first.value, ast.Constant)
                    and isinstance(first.value.value, str)
                ):
                    self.docstrings.add(id(first))
                    self.docstrings.add(id(first.value))
            annotations: list[ast.expr | None] = []
            if isinstance(node, ast.arg):
                annotations.append(node.annotation)
            elif isinstance(node, ast.FunctionDef):
                annotations.append(node.returns)
            for annotation in annotations:
                if annotation is not None:
                    self.annotation_nodes.update(id(n) for n in ast.walk(annotation))

    def _in_desk(self, node: ast.AST) -> bool:
        return id(node) in self.desk_nodes

    def _desk_log(self, node: ast.Expr) -> bool:
        """``log.warning(...)`` as a statement of the desk check (its log lines)."""
        return self._in_desk(node) and isinstance(node.value, ast.Call) and _dotted(node.value.func) == "log.warning"

    def _visit(self, node: ast.AST, tree: ast.Module) -> None:
        if isinstance(node, _DESK_NODES) and self._in_desk(node):
            if isinstance(node, ast.ExceptHandler):
                self._except_handler(node)
            return
        if not isinstance(node, _ALLOWED_NODES):
            self.add(node, "nodes", f"{type(node).__name__} is not allowed in a generated strategy")
            return
        if isinstance(node, ast.Import):
            self._import(node, tree)
        elif isinstance(node, ast.ImportFrom):
            self._import_from(node, tree)
        elif isinstance(node, ast.ClassDef):
            self._class(node, tree)
        elif isinstance(node, ast.FunctionDef):
            self._function(node, tree)
        elif isinstance(node, ast.arg):
            self._identifier(node, node.arg, "parameter")
        elif isinstance(node, ast.keyword):
            self._keyword(node)
        elif isinstance(node, ast.Name):
            self._name(node)
        elif isinstance(node, ast.Attribute):
            self._attribute(node)
        elif isinstance(node, ast.Subscript):
            self._subscript(node)
        elif isinstance(node, ast.Call):
            self._call(node)
        elif isinstance(node, ast.Expr):
            if id(node) not in self.docstrings and not self._desk_log(node):
                self.add(node, "nodes", "a bare expression statement (other than a docstring) is not allowed")
        elif isinstance(node, ast.Constant):
            self._constant(node)

    # -- rules -------------------------------------------------------------------------------

    def _import(self, node: ast.Import, tree: ast.Module) -> None:
        if node not in tree.body:
            self.add(node, "imports", "imports are allowed at module level only")
        for alias in node.names:
            root = alias.name.split(".")[0]
            if self.allowed.desk_check and alias.name in DESK_CHECK_IMPORTS and alias.asname is None:
                continue  # the desk check's own imports, used in its method only (see _name)
            if root in FORBIDDEN_MODULES:
                self.add(node, "modules", f"import of forbidden module {alias.name!r}")
            elif ALLOWED_IMPORTS.get(alias.name) != alias.asname:
                allowed = ", ".join(f"import {m} as {a}" for m, a in sorted(ALLOWED_IMPORTS.items()))
                self.add(node, "imports", f"'import {alias.name}' is not allowed (only {allowed})")

    def _import_from(self, node: ast.ImportFrom, tree: ast.Module) -> None:
        if node not in tree.body:
            self.add(node, "imports", "imports are allowed at module level only")
        module = node.module or ""
        if node.level:
            self.add(node, "imports", "relative imports are not allowed")
            return
        if module.split(".")[0] in FORBIDDEN_MODULES:
            self.add(node, "modules", f"import from forbidden module {module!r}")
            return
        for alias in node.names:
            if alias.asname is not None or (module, alias.name) not in ALLOWED_FROM_IMPORTS:
                shown = alias.name + (f" as {alias.asname}" if alias.asname else "")
                self.add(node, "imports", f"'from {module} import {shown}' is not allowed")

    def _class(self, node: ast.ClassDef, tree: ast.Module) -> None:
        if node not in tree.body:
            self.add(node, "class", "classes are allowed at module level only")
        self._identifier(node, node.name, "class")
        if node.decorator_list:
            self.add(node, "nodes", "class decorators are not allowed")
        if node.keywords:
            self.add(node, "class", "class keywords (metaclass=...) are not allowed")
        bases = [b.id for b in node.bases if isinstance(b, ast.Name)]
        if bases != ["IStrategy"] or len(node.bases) != 1:
            self.add(node, "class", "the class must derive from IStrategy only")
        for stmt in node.body:
            if not isinstance(stmt, ast.Assign | ast.FunctionDef) and id(stmt) not in self.docstrings:
                self.add(stmt, "nodes", f"{type(stmt).__name__} in the class body is not allowed")

    def _function(self, node: ast.FunctionDef, tree: ast.Module) -> None:
        in_class = any(isinstance(c, ast.ClassDef) and node in c.body for c in tree.body)
        if not in_class:
            self.add(node, "nodes", "functions are allowed only as methods of the strategy class")
        self._identifier(node, node.name, "method")
        if node.decorator_list:
            self.add(node, "nodes", "decorators are not allowed")
        args = node.args
        if args.vararg is not None:
            self.add(node, "nodes", "*args is not allowed")
        if args.defaults or args.kw_defaults:
            self.add(node, "nodes", "default argument values are not allowed")

    def _except_handler(self, node: ast.ExceptHandler) -> None:
        if not (isinstance(node.type, ast.Name) and node.type.id == "Exception") or node.name is None:
            self.add(node, "nodes", "the desk check catches only 'except Exception as <name>'")
        else:
            self._identifier(node, node.name, "exception name")

    def _identifier(self, node: ast.AST, ident: str, what: str) -> bool:
        if ident.startswith("__"):
            self.add(node, "dunder", f"dunder {what} {ident!r} is not allowed")
            return False
        if ident in _DESK_ONLY_NAMES and ident in self.allowed.names:
            if self._in_desk(node):
                return True
            self.add(node, "names", f"{what} {ident!r} is allowed in {DESK_CHECK_METHOD} only")
            return False
        if ident in FORBIDDEN_MODULES:
            self.add(node, "modules", f"{what} {ident!r} names a forbidden module")
            return False
        if ident not in self.allowed.names:
            self.add(node, "names", f"{what} {ident!r} is not on the whitelist")
            return False
        return True

    def _keyword(self, node: ast.keyword) -> None:
        if node.arg is None:
            self.add(node, "nodes", "**mapping arguments are not allowed")
        elif node.arg.startswith("__"):
            self.add(node, "dunder", f"dunder keyword argument {node.arg!r} is not allowed")
        elif node.arg not in self.allowed.keywords:
            self.add(node, "names", f"keyword argument {node.arg!r} is not on the whitelist")
        elif node.arg in DESK_CHECK_KEYWORDS and not self._in_desk(node):
            self.add(node, "names", f"keyword argument {node.arg!r} is allowed in {DESK_CHECK_METHOD} only")

    def _name(self, node: ast.Name) -> None:
        ident = node.id
        if isinstance(node.ctx, ast.Store) and ident in NOT_REBINDABLE:
            self.add(node, "names", f"{ident!r} may not be assigned to")
            return
        if ident in FORBIDDEN_CALLS and ident not in CALLABLE_NAMES:
            self.add(node, "calls", f"{ident!r} is not allowed")
            return
        if not self._identifier(node, ident, "name"):
            return
        if ident in ANNOTATION_ONLY and id(node) not in self.annotation_nodes and id(node) not in self.desk_callees:
            self.add(node, "names", f"{ident!r} may appear in annotations only")

    def _attribute(self, node: ast.Attribute) -> None:
        attr = node.attr
        if attr.startswith("__"):
            self.add(node, "dunder", f"dunder attribute {attr!r} is not allowed")
            return
        owner = node.value.id if isinstance(node.value, ast.Name) else None
        if attr in _DESK_ONLY_ATTRIBUTES and attr in self.allowed.attributes and not self._in_desk(node):
            self.add(node, "names", f"attribute {attr!r} is allowed in {DESK_CHECK_METHOD} only")
            return
        if owner in _DESK_MODULE_ATTRIBUTES and self.allowed.desk_check:
            if attr not in _DESK_MODULE_ATTRIBUTES[owner]:
                self.add(node, "names", f"'{owner}.{attr}' is not allowed in the desk check")
            return
        if _dotted(node.value) == "urllib.request":
            if attr != "urlopen":
                self.add(node, "names", f"'urllib.request.{attr}' is not allowed (only urlopen, on loopback)")
            return
        if owner == "ta":
            if attr not in self.allowed.talib_functions:
                self.add(node, "names", f"TA-Lib function 'ta.{attr}' is not one the bundle declares")
            return
        if owner == "np" and attr != "arange":
            self.add(node, "names", f"'np.{attr}' is not allowed (only np.arange)")
            return
        if attr not in self.allowed.attributes:
            self.add(node, "names", f"attribute {attr!r} is not on the whitelist")

    def _subscript(self, node: ast.Subscript) -> None:
        if id(node) in self.annotation_nodes:
            if not (isinstance(node.value, ast.Name) and node.value.id == "dict"):
                self.add(node, "nodes", "only dict[...] may be subscripted in an annotation")
            return
        if isinstance(node.value, ast.Name) and node.value.id in _DESK_SUBSCRIPTED and self._in_desk(node):
            key = node.slice
            if not (isinstance(key, ast.Constant) and isinstance(key.value, str)):
                self.add(node, "nodes", f"a {node.value.id}[...] key must be a string constant")
            return
        if not (isinstance(node.value, ast.Name) and node.value.id == "dataframe"):
            self.add(node, "nodes", "only dataframe[...] may be subscripted")
            return
        key = node.slice
        if not (isinstance(key, ast.Constant) and isinstance(key.value, str)):
            self.add(node, "nodes", "a dataframe key must be a string constant")
        elif key.value not in self.allowed.columns:
            self.add(node, "names", f"column {key.value!r} is neither a candle column nor a declared indicator output")

    def _call(self, node: ast.Call) -> None:
        func = node.func
        if isinstance(func, ast.Name):
            if func.id in FORBIDDEN_CALLS or func.id.startswith("__"):
                self.add(node, "calls", f"call to {func.id!r} is not allowed")
            elif id(func) in self.desk_callees:
                pass  # int(...) and str(...) in the desk check
            elif func.id not in CALLABLE_NAMES:
                self.add(
                    node, "calls", f"call to {func.id!r} is not allowed (only {', '.join(sorted(CALLABLE_NAMES))})"
                )
        elif isinstance(func, ast.Attribute):
            if func.attr in FORBIDDEN_CALLS:
                self.add(node, "calls", f"call to .{func.attr}() is not allowed")
            elif _dotted(func) == "urllib.request.urlopen" and not _loopback_url(node):
                self.add(node, "calls", f"urllib.request.urlopen may only open {DESK_CHECK_HOST!r} + "
                         f"str(int(<port>)) + {DESK_CHECK_PATH!r}")
        else:
            self.add(node, "calls", "only names and attributes may be called")
        for arg in node.args:
            if isinstance(arg, ast.Starred):
                self.add(arg, "nodes", "*arguments are not allowed")

    def _constant(self, node: ast.Constant) -> None:
        value = node.value
        if isinstance(value, bytes) or value is Ellipsis or isinstance(value, complex):
            self.add(node, "strings", f"{type(value).__name__} constants are not allowed")
        elif (
            isinstance(value, str)
            and id(node) not in self.docstrings
            and (not _PLAIN_STRING.fullmatch(value) or "__" in value)
            and not (value in _DESK_MESSAGES and self._in_desk(node))
        ):
            self.add(node, "strings", f"string constant {value[:40]!r} is not a plain name")


def _dotted(node: ast.expr) -> str | None:
    """``a.b.c`` for a chain of attributes on a name (None for anything else)."""
    parts: list[str] = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name):
        return None
    return ".".join([node.id, *reversed(parts)])


def _loopback_url(call: ast.Call) -> bool:
    """Whether ``urlopen``'s URL is exactly ``DESK_CHECK_HOST + str(int(<expr>)) + DESK_CHECK_PATH``."""
    if not call.args:
        return False
    url = call.args[0]
    if not (isinstance(url, ast.BinOp) and isinstance(url.op, ast.Add) and isinstance(url.left, ast.BinOp)
            and isinstance(url.left.op, ast.Add)):
        return False
    host, port, path = url.left.left, url.left.right, url.right
    return (isinstance(host, ast.Constant) and host.value == DESK_CHECK_HOST
            and isinstance(path, ast.Constant) and path.value == DESK_CHECK_PATH
            and _calls(port, "str") and _calls(port.args[0], "int"))  # type: ignore[attr-defined]


def _calls(node: ast.expr, name: str) -> bool:
    """Whether ``node`` is ``name(<one positional argument>)``."""
    return (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == name
            and len(node.args) == 1 and not node.keywords)
