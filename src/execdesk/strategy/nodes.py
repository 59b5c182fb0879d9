"""The expression tree: small immutable node classes, independent of Python's ``ast``.

:func:`execdesk.strategy.expr.parse_expression` builds these; nothing else should. Every node is
either *numeric* (a number or a float series) or a *condition* (a boolean series), and the parser
guarantees the tree is well typed, so renderers and evaluators can trust it:

* conditions are :class:`Compare`, :class:`BoolOp`, :class:`Not` and the ``crossed_*`` calls;
* a :class:`Compare` always involves at least one series, so every condition is a series (never a
  Python ``bool``), which keeps the pandas rendering of ``not``/``and``/``or`` (``~``/``&``/``|``)
  correct;
* constant-only arithmetic is folded into a single :class:`Num` at parse time.

Two renderings exist, both produced from the tree and never from the user's text:

* ``str(expr)``: the canonical form in the expression language itself (minimal parentheses,
  chained comparisons expanded, constants folded); parsing it again yields an equal tree;
* :meth:`Expr.render_python`: a fully parenthesised pandas expression over ``Series`` objects,
  where ``ref(name)`` supplies the source text for a series (it should return an atom, e.g.
  ``dataframe["rsi"]``). Functions are rendered with pandas methods only::

      crossed_above(a, b)   ->  ((A > B) & (A.shift(1) <= B.shift(1)))   (B unshifted if constant)
      crossed_below(a, b)   ->  ((A < B) & (A.shift(1) >= B.shift(1)))
      shift(x, n)           ->  X.shift(n)
      rolling_mean(x, n)    ->  X.rolling(n).mean()      (and .max() / .min())
      abs(x)                ->  abs(X)
      and / or / not        ->  & / | / ~
      a != b                ->  ((A != B) & A.notna() & B.notna())   (NaN compares False)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

Kind = Literal["num", "bool"]

# Precedence levels of the canonical rendering (higher binds tighter).
_OR, _AND, _NOT, _CMP, _ADD, _MUL, _NEG, _POW, _ATOM = range(1, 10)

_ROLLING_METHOD = {"rolling_mean": "mean", "rolling_max": "max", "rolling_min": "min"}


class Expr:
    """Base of every expression node."""

    __slots__ = ()

    @property
    def kind(self) -> Kind:
        """``"bool"`` for a condition, ``"num"`` for a number or numeric series."""
        raise NotImplementedError

    @property
    def precedence(self) -> int:
        """Binding strength in the canonical rendering."""
        raise NotImplementedError

    def children(self) -> tuple[Expr, ...]:
        """Direct sub-expressions."""
        return ()

    def names(self) -> frozenset[str]:
        """The series names this expression reads."""
        found: set[str] = set()
        stack: list[Expr] = [self]
        while stack:
            node = stack.pop()
            if isinstance(node, Name):
                found.add(node.id)
            stack.extend(node.children())
        return frozenset(found)

    def max_shift(self) -> int:
        """How many bars before the current one the expression reads (its own lookback)."""
        return max((c.max_shift() for c in self.children()), default=0)

    def render_python(self, ref: Callable[[str], str]) -> str:
        """Fully parenthesised pandas source for this expression (see the module docstring)."""
        raise NotImplementedError

    def _wrap(self, minimum: int) -> str:
        text = str(self)
        return text if self.precedence >= minimum else f"({text})"


@dataclass(frozen=True, slots=True)
class Num(Expr):
    """A finite numeric constant (an ``int`` stays an ``int`` so window sizes stay exact)."""

    value: int | float

    @property
    def kind(self) -> Kind:
        return "num"

    @property
    def precedence(self) -> int:
        # A negative literal renders with a leading minus and binds like unary minus.
        return _NEG if self.value < 0 else _ATOM

    def render_python(self, ref: Callable[[str], str]) -> str:
        text = repr(self.value)
        return f"({text})" if self.value < 0 else text

    def __str__(self) -> str:
        return repr(self.value)


@dataclass(frozen=True, slots=True)
class Name(Expr):
    """A series by name (an OHLCV column or an indicator output)."""

    id: str

    @property
    def kind(self) -> Kind:
        return "num"

    @property
    def precedence(self) -> int:
        return _ATOM

    def render_python(self, ref: Callable[[str], str]) -> str:
        return ref(self.id)

    def __str__(self) -> str:
        return self.id


@dataclass(frozen=True, slots=True)
class Neg(Expr):
    """Unary minus of a numeric expression."""

    operand: Expr

    @property
    def kind(self) -> Kind:
        return "num"

    @property
    def precedence(self) -> int:
        return _NEG

    def children(self) -> tuple[Expr, ...]:
        return (self.operand,)

    def render_python(self, ref: Callable[[str], str]) -> str:
        return f"(-{self.operand.render_python(ref)})"

    def __str__(self) -> str:
        return "-" + self.operand._wrap(_NEG)


@dataclass(frozen=True, slots=True)
class Not(Expr):
    """Logical negation of a condition."""

    operand: Expr

    @property
    def kind(self) -> Kind:
        return "bool"

    @property
    def precedence(self) -> int:
        return _NOT

    def children(self) -> tuple[Expr, ...]:
        return (self.operand,)

    def render_python(self, ref: Callable[[str], str]) -> str:
        return f"(~{self.operand.render_python(ref)})"

    def __str__(self) -> str:
        return "not " + self.operand._wrap(_NOT)


@dataclass(frozen=True, slots=True)
class Arith(Expr):
    """``left op right`` with op one of ``+ - * / **`` (``**`` only with a constant exponent)."""

    op: Literal["+", "-", "*", "/", "**"]
    left: Expr
    right: Expr

    @property
    def kind(self) -> Kind:
        return "num"

    @property
    def precedence(self) -> int:
        return {"+": _ADD, "-": _ADD, "*": _MUL, "/": _MUL, "**": _POW}[self.op]

    def children(self) -> tuple[Expr, ...]:
        return (self.left, self.right)

    def render_python(self, ref: Callable[[str], str]) -> str:
        return f"({self.left.render_python(ref)} {self.op} {self.right.render_python(ref)})"

    def __str__(self) -> str:
        p = self.precedence
        if self.op == "**":
            # Right-associative; Python accepts a unary minus directly after ``**``.
            return f"{self.left._wrap(p + 1)} ** {self.right._wrap(_NEG)}"
        # Left-associative: an equal-precedence right child keeps its parentheses so the
        # canonical text parses back to exactly this tree.
        return f"{self.left._wrap(p)} {self.op} {self.right._wrap(p + 1)}"


@dataclass(frozen=True, slots=True)
class Compare(Expr):
    """A single numeric comparison (chains are expanded into ``and`` by the parser)."""

    op: Literal["<", "<=", ">", ">=", "==", "!="]
    left: Expr
    right: Expr

    @property
    def kind(self) -> Kind:
        return "bool"

    @property
    def precedence(self) -> int:
        return _CMP

    def children(self) -> tuple[Expr, ...]:
        return (self.left, self.right)

    def render_python(self, ref: Callable[[str], str]) -> str:
        left, right = self.left.render_python(ref), self.right.render_python(ref)
        text = f"({left} {self.op} {right})"
        if self.op != "!=":
            return text
        # IEEE says NaN != x is True; the language says any comparison with NaN is False.
        guards = [f"{src}.notna()" for src, node in ((left, self.left), (right, self.right)) if node.names()]
        return "(" + " & ".join([text, *guards]) + ")"

    def __str__(self) -> str:
        return f"{self.left._wrap(_CMP + 1)} {self.op} {self.right._wrap(_CMP + 1)}"


@dataclass(frozen=True, slots=True)
class BoolOp(Expr):
    """``and`` / ``or`` over two or more conditions (nested same-op groups are flattened)."""

    op: Literal["and", "or"]
    operands: tuple[Expr, ...]

    @property
    def kind(self) -> Kind:
        return "bool"

    @property
    def precedence(self) -> int:
        return _AND if self.op == "and" else _OR

    def children(self) -> tuple[Expr, ...]:
        return self.operands

    def render_python(self, ref: Callable[[str], str]) -> str:
        joiner = " & " if self.op == "and" else " | "
        return "(" + joiner.join(o.render_python(ref) for o in self.operands) + ")"

    def __str__(self) -> str:
        return f" {self.op} ".join(o._wrap(self.precedence + 1) for o in self.operands)


@dataclass(frozen=True, slots=True)
class Call(Expr):
    """A whitelisted function; integer parameters (shift amount, window) are :class:`Num` args."""

    fn: Literal["crossed_above", "crossed_below", "shift", "rolling_mean", "rolling_max", "rolling_min", "abs"]
    args: tuple[Expr, ...]

    @property
    def kind(self) -> Kind:
        return "bool" if self.fn in ("crossed_above", "crossed_below") else "num"

    @property
    def precedence(self) -> int:
        return _ATOM

    def children(self) -> tuple[Expr, ...]:
        return self.args

    def window(self) -> int:
        """The integer parameter of ``shift`` / ``rolling_*``."""
        param = self.args[1]
        if not (isinstance(param, Num) and isinstance(param.value, int)):
            raise TypeError(f"{self.fn}() has no integer parameter")
        return param.value

    def max_shift(self) -> int:
        inner = super(Call, self).max_shift()
        if self.fn in ("crossed_above", "crossed_below"):
            return inner + 1
        if self.fn == "shift":
            return inner + self.window()
        if self.fn in _ROLLING_METHOD:
            return inner + self.window() - 1
        return inner

    def render_python(self, ref: Callable[[str], str]) -> str:
        first = self.args[0].render_python(ref)
        if self.fn == "abs":
            return f"abs({first})"
        if self.fn == "shift":
            return f"{first}.shift({self.window()})"
        if self.fn in _ROLLING_METHOD:
            return f"{first}.rolling({self.window()}).{_ROLLING_METHOD[self.fn]}()"
        second = self.args[1].render_python(ref)
        # A constant has no history: shifting it is itself (and a Python number has no .shift).
        prev = f"{second}.shift(1)" if self.args[1].names() else second
        now, before = (">", "<=") if self.fn == "crossed_above" else ("<", ">=")
        return f"(({first} {now} {second}) & ({first}.shift(1) {before} {prev}))"

    def __str__(self) -> str:
        return f"{self.fn}(" + ", ".join(str(a) for a in self.args) + ")"
