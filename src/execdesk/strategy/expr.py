"""The whitelisted expression language of entry and exit conditions.

Grammar (a strict subset of Python expressions)::

    condition := condition "and" condition | condition "or" condition | "not" condition
               | number CMP number [CMP number ...]          CMP: < <= > >= == !=
               | crossed_above(number, number) | crossed_below(number, number)
    number    := NAME | CONSTANT | number (+ - * /) number | number ** CONSTANT (|c| <= 8)
               | -number | +number | shift(number, N) | rolling_mean(number, W)
               | rolling_max(number, W) | rolling_min(number, W) | abs(number)

``NAME`` is an OHLCV column (``open high low close volume``) or a declared indicator output;
``N`` is a constant int in 0..1000 and ``W`` in 1..1000 (negative shifts would read the future).
Text is checked for length, characters and bracket depth *before* Python's parser sees it, and the
parsed tree for depth and size before it is walked, so hostile input fails fast with an
:class:`ExpressionError` naming the offending token and its 1-based column.
"""

from __future__ import annotations

import ast
import difflib
import math
from collections.abc import Collection, Mapping
from typing import Any, Literal, cast

import numpy as np
from numpy.typing import NDArray

from execdesk.errors import InvalidInput
from execdesk.strategy import _kernels
from execdesk.strategy._kernels import as_signal
from execdesk.strategy.nodes import Arith, BoolOp, Call, Compare, Expr, Name, Neg, Not, Num

__all__ = [
    "FUNCTIONS",
    "OHLCV",
    "Expr",
    "ExpressionError",
    "as_signal",
    "evaluate",
    "parse_expression",
]

#: The candle columns every expression may read.
OHLCV: tuple[str, ...] = ("open", "high", "low", "close", "volume")
#: Function name -> (arity, bounds of the integer parameter or None).
FUNCTIONS: Mapping[str, tuple[int, tuple[int, int] | None]] = {
    "crossed_above": (2, None),
    "crossed_below": (2, None),
    "shift": (2, (0, 1000)),
    "rolling_mean": (2, (1, 1000)),
    "rolling_max": (2, (1, 1000)),
    "rolling_min": (2, (1, 1000)),
    "abs": (1, None),
}

MAX_LENGTH = 2000
MAX_DEPTH = 32
MAX_NODES = 500
MAX_EXPONENT = 8
_MAX_INT = 2**53  # beyond this an int constant no longer survives the float64 evaluation exactly

_ARITH: dict[type[ast.operator], Literal["+", "-", "*", "/", "**"]] = {
    ast.Add: "+",
    ast.Sub: "-",
    ast.Mult: "*",
    ast.Div: "/",
    ast.Pow: "**",
}
_CMP: dict[type[ast.cmpop], Literal["<", "<=", ">", ">=", "==", "!="]] = {
    ast.Lt: "<",
    ast.LtE: "<=",
    ast.Gt: ">",
    ast.GtE: ">=",
    ast.Eq: "==",
    ast.NotEq: "!=",
}
_OP_HINTS: dict[type[ast.AST], str] = {
    ast.BitAnd: "operator '&' is not allowed (use 'and')",
    ast.BitOr: "operator '|' is not allowed (use 'or')",
    ast.Invert: "operator '~' is not allowed (use 'not')",
    ast.BitXor: "operator '^' is not allowed",
    ast.FloorDiv: "operator '//' is not allowed",
    ast.Mod: "operator '%' is not allowed",
    ast.MatMult: "operator '@' is not allowed",
    ast.LShift: "operator '<<' is not allowed",
    ast.RShift: "operator '>>' is not allowed",
    ast.Is: "operator 'is' is not allowed (use '==')",
    ast.IsNot: "operator 'is not' is not allowed (use '!=')",
    ast.In: "operator 'in' is not allowed",
    ast.NotIn: "operator 'not in' is not allowed",
}
_FORBIDDEN: dict[type[ast.AST], str] = {
    ast.Subscript: "subscripts are not allowed",
    ast.Slice: "slices are not allowed",
    ast.Lambda: "lambda is not allowed",
    ast.ListComp: "comprehensions are not allowed",
    ast.SetComp: "comprehensions are not allowed",
    ast.DictComp: "comprehensions are not allowed",
    ast.GeneratorExp: "comprehensions are not allowed",
    ast.NamedExpr: "assignment expressions (:=) are not allowed",
    ast.IfExp: "conditional expressions (x if c else y) are not allowed",
    ast.JoinedStr: "string literals are not allowed",
    ast.FormattedValue: "string literals are not allowed",
    ast.List: "list literals are not allowed",
    ast.Tuple: "tuples are not allowed",
    ast.Set: "set literals are not allowed",
    ast.Dict: "dict literals are not allowed",
    ast.Starred: "star arguments are not allowed",
    ast.Await: "await is not allowed",
    ast.Yield: "yield is not allowed",
    ast.YieldFrom: "yield is not allowed",
}


class ExpressionError(InvalidInput):
    """An expression was rejected; ``token`` is the offending text, ``column`` its 1-based column."""

    def __init__(self, reason: str, *, token: str, column: int, hint: str = "") -> None:
        self.reason = reason
        self.token = token
        self.column = column
        message = f"{reason} at column {column}"
        if token and repr(token) not in reason:
            message += f" ({token!r})"
        if hint:
            message += f"; {hint}"
        super().__init__(message)


def parse_expression(text: str, names: Collection[str], *, boolean: bool = True) -> Expr:
    """Parse ``text`` into an :class:`Expr`, reading only ``names`` and the OHLCV columns.

    With ``boolean`` (the default) the expression must be a condition; pass ``boolean=False`` to
    accept a numeric expression. Raises :class:`ExpressionError` for anything outside the grammar.
    """
    prepared = _precheck(text)
    try:
        tree = ast.parse(prepared, mode="eval")
    except SyntaxError as exc:
        body = prepared.rstrip()
        if not exc.offset or exc.offset > len(body):
            # Python reports offset 0 when the text ends mid-expression.
            raise ExpressionError(
                f"syntax error ({exc.msg}: the expression ends too early)",
                token=body.split()[-1][-10:],
                column=len(body),
            ) from None
        token = prepared[exc.offset - 1 : exc.offset + 9].split(" ")[0] or prepared[exc.offset - 1]
        raise ExpressionError(f"syntax error ({exc.msg})", token=token, column=exc.offset) from None
    except (ValueError, MemoryError, RecursionError):
        # The prechecks make these unreachable in practice; kept so nothing but ExpressionError
        # can ever leave this function.
        raise ExpressionError("expression too complex", token=prepared[:10], column=1) from None
    _check_shape(tree.body, prepared)
    allowed = frozenset(names) | frozenset(OHLCV)
    expr = _Converter(prepared, allowed).convert(tree.body)
    if boolean and expr.kind != "bool":
        raise ExpressionError(
            "the expression is a number, not a condition",
            token=prepared.strip()[:20],
            column=1,
            hint="compare it, e.g. 'rsi < 30'",
        )
    return expr


def _precheck(text: object) -> str:
    if not isinstance(text, str):
        raise ExpressionError(f"an expression must be a string, not {type(text).__name__}", token="", column=1)
    if len(text) > MAX_LENGTH:
        raise ExpressionError(
            f"expression too long ({len(text)} characters, the limit is {MAX_LENGTH})",
            token=text[MAX_LENGTH : MAX_LENGTH + 10],
            column=MAX_LENGTH + 1,
        )
    if not text.strip():
        raise ExpressionError("expression is empty", token="", column=1)
    depth = 0
    for i, ch in enumerate(text):
        code = ord(ch)
        # Printable ASCII only: no control characters, and no non-ASCII letters that Python
        # would NFKC-normalise into a different (allowed) name.
        if not (32 <= code < 127 or ch in "\t\r\n"):
            raise ExpressionError(f"character {ch!r} is not allowed", token=ch, column=i + 1)
        if ch in "([{":
            depth += 1
            if depth > MAX_DEPTH:
                raise ExpressionError(f"brackets nested deeper than {MAX_DEPTH} levels", token=ch, column=i + 1)
        elif ch in ")]}":
            depth -= 1
    # One-for-one replacement keeps columns aligned with the original text while letting a
    # condition span several YAML lines.
    return text.translate({9: " ", 10: " ", 13: " "})


def _check_shape(root: ast.expr, text: str) -> None:
    # Iterative on purpose: the tree is not yet known to be shallow.
    count = 0
    stack: list[tuple[ast.AST, int]] = [(root, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, ast.expr):
            count += 1
            if count > MAX_NODES:
                raise ExpressionError(f"expression has more than {MAX_NODES} elements", **_where(node, text))
            if depth > MAX_DEPTH:
                raise ExpressionError(f"expression nested deeper than {MAX_DEPTH} levels", **_where(node, text))
        stack.extend((child, depth + 1) for child in ast.iter_child_nodes(node))


def _between(left: ast.AST, right: ast.AST, text: str) -> dict[str, Any]:
    """Token and column of the operator written between two operands."""
    start = getattr(left, "end_col_offset", None) or 0
    end = getattr(right, "col_offset", start)
    segment = text[start:end]
    token = segment.strip(" ()")
    offset = segment.find(token[:1]) if token else 0
    return {"token": token, "column": start + offset + 1}


def _where(node: ast.AST, text: str) -> dict[str, Any]:
    start = getattr(node, "col_offset", 0)
    end = getattr(node, "end_col_offset", None) or start + 1
    token = text[start:end]
    if len(token) > 40:
        token = token[:37] + "..."
    return {"token": token, "column": start + 1}


class _Converter:
    """Python ``ast`` -> :mod:`~execdesk.strategy.nodes`, type-checking as it goes."""

    def __init__(self, text: str, allowed: frozenset[str]) -> None:
        self.text = text
        self.allowed = allowed

    def fail(self, node: ast.AST, reason: str, hint: str = "") -> ExpressionError:
        return ExpressionError(reason, hint=hint, **_where(node, self.text))

    def convert(self, node: ast.expr) -> Expr:
        if isinstance(node, ast.Constant):
            return self.constant(node)
        if isinstance(node, ast.Name):
            return self.name(node)
        if isinstance(node, ast.UnaryOp):
            return self.unary(node)
        if isinstance(node, ast.BinOp):
            return self.binop(node)
        if isinstance(node, ast.BoolOp):
            return self.boolop(node)
        if isinstance(node, ast.Compare):
            return self.compare(node)
        if isinstance(node, ast.Call):
            return self.call(node)
        if isinstance(node, ast.Attribute):
            end = node.end_col_offset or 0
            dot = self.text.rfind(".", 0, end - len(node.attr))
            raise ExpressionError("attribute access is not allowed", token="." + node.attr, column=max(dot, 0) + 1)
        reason = _FORBIDDEN.get(type(node), f"{type(node).__name__} is not allowed")
        raise self.fail(node, reason)

    def constant(self, node: ast.Constant) -> Num:
        value = node.value
        if isinstance(value, bool) or value is None or value is Ellipsis:
            raise self.fail(node, f"the constant {value!r} is not allowed", "only numbers are")
        if isinstance(value, str | bytes):
            raise self.fail(node, "string literals are not allowed")
        if not isinstance(value, int | float):
            raise self.fail(node, f"{type(value).__name__} constants are not allowed")
        return self.number(node, value)

    def number(self, node: ast.AST, value: int | float) -> Num:
        if isinstance(value, float) and not math.isfinite(value):
            raise self.fail(node, "the constant is not a finite number")
        if abs(value) > _MAX_INT:
            raise self.fail(node, f"the constant is too large (at most {_MAX_INT} in magnitude)")
        return Num(value)

    def name(self, node: ast.Name) -> Name:
        ident = node.id
        if ident.startswith("__") or ident.endswith("__"):
            raise self.fail(node, f"dunder name {ident!r} is not allowed")
        if ident in self.allowed:
            return Name(ident)
        if ident in FUNCTIONS:
            raise self.fail(node, f"function {ident!r} must be called")
        close = difflib.get_close_matches(ident, sorted(self.allowed), n=1)
        raise self.fail(node, f"unknown name {ident!r}", f"did you mean {close[0]!r}?" if close else "")

    def numeric(self, node: ast.expr, what: str) -> Expr:
        expr = self.convert(node)
        if expr.kind != "num":
            raise self.fail(node, f"{what} needs a number, not a condition")
        return expr

    def condition(self, node: ast.expr, what: str) -> Expr:
        expr = self.convert(node)
        if expr.kind != "bool":
            raise self.fail(node, f"{what} needs a condition, not a number", "compare it, e.g. 'rsi < 30'")
        return expr

    def unary(self, node: ast.UnaryOp) -> Expr:
        if isinstance(node.op, ast.Not):
            return Not(self.condition(node.operand, "'not'"))
        if isinstance(node.op, ast.Invert):
            raise self.fail(node, _OP_HINTS[ast.Invert])
        operand = self.numeric(node.operand, "unary minus/plus")
        if isinstance(node.op, ast.UAdd):
            return operand
        if isinstance(operand, Num):
            return Num(-operand.value)
        return Neg(operand)

    def binop(self, node: ast.BinOp) -> Expr:
        op = _ARITH.get(type(node.op))
        if op is None:
            reason = _OP_HINTS.get(type(node.op), "operator not allowed")
            raise ExpressionError(reason, **_between(node.left, node.right, self.text))
        left = self.numeric(node.left, f"'{op}'")
        right = self.numeric(node.right, f"'{op}'")
        if op == "**" and not (isinstance(right, Num) and abs(right.value) <= MAX_EXPONENT):
            raise self.fail(
                node.right, f"the exponent of '**' must be a constant between -{MAX_EXPONENT} and {MAX_EXPONENT}"
            )
        if op == "/" and isinstance(right, Num) and right.value == 0:
            raise self.fail(node.right, "division by zero")
        if isinstance(left, Num) and isinstance(right, Num):
            return self.fold(node, op, left.value, right.value)
        return Arith(op, left, right)

    def fold(self, node: ast.AST, op: str, a: int | float, b: int | float) -> Num:
        # Constant-only arithmetic becomes one literal, so no Python-level arithmetic (and no
        # ZeroDivisionError) can hide in the generated code.
        try:
            if op == "+":
                value: object = a + b
            elif op == "-":
                value = a - b
            elif op == "*":
                value = a * b
            elif op == "/":
                value = a / b
            else:
                value = a**b
        except (ZeroDivisionError, OverflowError):
            raise self.fail(node, "constant arithmetic has no finite result") from None
        if not isinstance(value, int | float):  # e.g. a complex root of a negative number
            raise self.fail(node, "constant arithmetic has no real result")
        return self.number(node, value)

    def boolop(self, node: ast.BoolOp) -> Expr:
        op: Literal["and", "or"] = "and" if isinstance(node.op, ast.And) else "or"
        operands: list[Expr] = []
        for value in node.values:
            expr = self.condition(value, f"'{op}'")
            # Flatten (a and b) and c: same meaning, one canonical shape.
            operands.extend(expr.operands if isinstance(expr, BoolOp) and expr.op == op else (expr,))
        return BoolOp(op, tuple(operands))

    def compare(self, node: ast.Compare) -> Expr:
        nodes = [node.left, *node.comparators]
        for i, op_node in enumerate(node.ops):
            if type(op_node) not in _CMP:
                reason = _OP_HINTS.get(type(op_node), "comparison not allowed")
                raise ExpressionError(reason, **_between(nodes[i], nodes[i + 1], self.text))
        operands = [self.numeric(n, "a comparison") for n in nodes]
        parts: list[Expr] = []
        for i, op_node in enumerate(node.ops):
            op = _CMP[type(op_node)]
            left, right = operands[i], operands[i + 1]
            if not (left.names() or right.names()):
                raise self.fail(node, "a comparison must involve a series, not only constants")
            parts.append(Compare(op, left, right))
        # a < b < c means a < b and b < c (pandas cannot chain comparisons).
        return parts[0] if len(parts) == 1 else BoolOp("and", tuple(parts))

    def call(self, node: ast.Call) -> Expr:
        if not isinstance(node.func, ast.Name):
            self.convert(node.func)  # raises for attribute access, subscripts, lambdas, ...
            # ... and anything convertible, e.g. "1(2)" or "(close + 1)(2)", is still no function.
            raise self.fail(node.func, "only the listed functions can be called", f"known: {', '.join(FUNCTIONS)}")
        fn = node.func.id
        if fn not in FUNCTIONS:
            if fn in self.allowed:
                raise self.fail(node.func, f"{fn!r} is a series, not a function")
            known = ", ".join(FUNCTIONS)
            raise self.fail(node.func, f"unknown function {fn!r}", f"known functions: {known}")
        if node.keywords:
            raise self.fail(node.keywords[0], "keyword arguments are not allowed")
        for arg in node.args:
            if isinstance(arg, ast.Starred):
                raise self.fail(arg, _FORBIDDEN[ast.Starred])
        arity, bounds = FUNCTIONS[fn]
        if len(node.args) != arity:
            raise self.fail(node, f"{fn}() takes {arity} argument{'s' * (arity > 1)}, got {len(node.args)}")
        first = self.numeric(node.args[0], f"{fn}()")
        if fn == "abs":
            return Num(abs(first.value)) if isinstance(first, Num) else Call("abs", (first,))
        if not first.names():
            raise self.fail(node.args[0], f"the first argument of {fn}() must use a series")
        second = self.numeric(node.args[1], f"{fn}()")
        if bounds is not None:
            lo, hi = bounds
            if not (isinstance(second, Num) and isinstance(second.value, int) and lo <= second.value <= hi):
                raise self.fail(
                    node.args[1], f"the second argument of {fn}() must be an integer constant in {lo}..{hi}"
                )
        return Call(cast(Any, fn), (first, second))


def evaluate(expr: Expr, series: Mapping[str, NDArray[Any]]) -> NDArray[Any]:
    """Evaluate ``expr`` over equal-length 1-D arrays; returns a float64 or bool array.

    Comparisons involving NaN are False; numbers broadcast. Only the names the expression reads
    must be present in ``series``.
    """
    needed = sorted(expr.names())
    env: dict[str, NDArray[np.float64]] = {}
    length: int | None = None
    for name in needed:
        if name not in series:
            raise InvalidInput(f"evaluate: series {name!r} is missing")
        arr = np.ascontiguousarray(series[name], dtype=np.float64)
        if arr.ndim != 1:
            raise InvalidInput(f"evaluate: series {name!r} must be 1-D, got shape {arr.shape}")
        if length is not None and arr.shape[0] != length:
            raise InvalidInput(f"evaluate: series {name!r} has length {arr.shape[0]}, expected {length}")
        length = arr.shape[0]
        env[name] = arr
    if length is None:  # no series at all (a numeric constant): pick any provided length
        length = next((len(v) for v in series.values()), 1)
    with np.errstate(all="ignore"):
        result = _eval(expr, env)
    return np.broadcast_to(result, (length,)).copy() if np.ndim(result) == 0 else np.asarray(result)


_Value = NDArray[Any] | float


def _eval(node: Expr, env: Mapping[str, NDArray[np.float64]]) -> _Value:
    if isinstance(node, Name):
        return env[node.id]
    if isinstance(node, Num):
        return float(node.value)
    if isinstance(node, Compare):
        a, b = _eval(node.left, env), _eval(node.right, env)
        result = np.asarray(_COMPARE[node.op](a, b))
        if node.op == "!=":  # the only comparison IEEE makes True for NaN
            result &= ~np.isnan(a)
            result &= ~np.isnan(b)
        return result
    if isinstance(node, BoolOp):
        values = [_eval(o, env) for o in node.operands]
        ufunc = np.logical_and if node.op == "and" else np.logical_or
        out = np.asarray(ufunc(values[0], values[1]))
        for v in values[2:]:
            ufunc(out, v, out=out)
        return out
    if isinstance(node, Not):
        return np.logical_not(_eval(node.operand, env))
    if isinstance(node, Neg):
        return np.negative(_eval(node.operand, env))
    if isinstance(node, Arith):
        a, b = _eval(node.left, env), _eval(node.right, env)
        return cast(_Value, _ARITH_FN[node.op](a, b))
    if isinstance(node, Call):
        first = np.asarray(_eval(node.args[0], env), dtype=np.float64)
        if node.fn == "abs":
            return np.abs(first)
        if node.fn in ("crossed_above", "crossed_below"):
            other = _eval(node.args[1], env)
            return _kernels.crossed(first, other, above=node.fn == "crossed_above")
        return _WINDOW_FN[node.fn](first, node.window())
    raise TypeError(f"unknown node {node!r}")  # unreachable: the parser builds only the above


_COMPARE: dict[str, Any] = {
    "<": np.less,
    "<=": np.less_equal,
    ">": np.greater,
    ">=": np.greater_equal,
    "==": np.equal,
    "!=": np.not_equal,
}
_ARITH_FN: dict[str, Any] = {
    "+": np.add,
    "-": np.subtract,
    "*": np.multiply,
    "/": np.true_divide,
    "**": np.power,
}
_WINDOW_FN: dict[str, Any] = {
    "shift": _kernels.shift,
    "rolling_mean": _kernels.rolling_mean,
    "rolling_max": _kernels.rolling_max,
    "rolling_min": _kernels.rolling_min,
}
