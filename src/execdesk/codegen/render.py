"""Render a strategy bundle into a Freqtrade ``IStrategy`` (source) and the README beside it.

Everything that reaches the generated Python is built here from *validated, structured* data:

* conditions come from the bundle's parsed expression trees via :meth:`Expr.render_python`, with
  ``ref`` mapping a series name to ``dataframe["<name>"]`` (names are validated identifiers) — the
  user's condition text is never copied into code;
* indicator calls come from :func:`~execdesk.strategy.indicators.talib_call` and the registry
  (TA-Lib function names are the registry's keys, never the bundle's spelling);
* numbers are rendered with ``repr`` of Python ``int``/``float`` values; strings only where their
  shape is fixed by validation (bundle id, pair, timeframe, column names);
* the free-text ``description`` goes into the README only (inside a fenced block), never into code.

With ``desk_check`` (a bot the desk deploys: :mod:`execdesk.freqtrade.deskcheck`) the strategy also gets a
``confirm_trade_entry`` that asks the desk's pre-trade check before every entry (HTTP on loopback, failing
closed) — only when the bot's config holds :data:`DESK_CHECK_KEY`, and only in live and dry-run trading. Its
text is fixed (no bundle value reaches it); the audit accepts its imports, nodes and names in that one method
only (:mod:`execdesk.codegen.audit`). Without ``desk_check`` the output is the same, byte for byte, as before
the option existed.

Rendering is deterministic: the same bundle (and sizing) gives the same bytes — no timestamps,
no dict-order dependence (the bundle's mappings are already canonically ordered).

Names in the generated class:

* ``param_<indicator>_<parameter>``: each indicator parameter (``param_ema_fast_period = 12``);
  the prefix keeps them clear of Freqtrade's own attributes (an indicator named ``use_exit`` with
  a ``signal`` parameter must not override ``use_exit_signal``);
* ``stake_*``: the stake-sizing values of :class:`StakeSizing`.
"""

from __future__ import annotations

import keyword
import math
import re
import textwrap
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from typing import Final, Literal

import jinja2

from execdesk.errors import InvalidInput
from execdesk.strategy import OHLCV, REGISTRY, StrategyBundle, output_names

#: Bumped whenever the generated code changes shape (it is written into every generated file).
TEMPLATE_VERSION: Final = 1
#: The longest line the generator writes (the review's ruff run uses the same limit).
LINE_LENGTH: Final = 120

#: Identifiers the template itself uses (besides the bundle-derived ones); the review's AST audit
#: accepts exactly these plus the names derived from the bundle.
TEMPLATE_NAMES: Final = frozenset(
    {
        # imports
        "annotations",
        "datetime",
        "np",
        "ta",
        "IStrategy",
        "DataFrame",
        # builtins used
        "abs",
        "min",
        "len",
        "int",
        "float",
        "str",
        "object",
        "dict",
        # method parameters and locals
        "self",
        "dataframe",
        "metadata",
        "warm",
        "signal",
        "pair",
        "current_time",
        "current_rate",
        "proposed_stake",
        "min_stake",
        "max_stake",
        "leverage",
        "entry_tag",
        "side",
        "kwargs",
        "equity",
        "stake",
        # Freqtrade strategy interface (class attributes and methods the template defines)
        "INTERFACE_VERSION",
        "timeframe",
        "stoploss",
        "minimal_roi",
        "trailing_stop",
        "trailing_stop_positive",
        "trailing_stop_positive_offset",
        "trailing_only_offset_is_reached",
        "can_short",
        "startup_candle_count",
        "process_only_new_candles",
        "use_exit_signal",
        "exit_profit_only",
        "ignore_roi_if_entry_signal",
        "order_types",
        "populate_indicators",
        "populate_entry_trend",
        "populate_exit_trend",
        "custom_stake_amount",
        # stake sizing attributes
        "stake_fixed_amount",
        "stake_wallet_fraction",
        "stake_risk_per_trade",
        "stake_max_position_fraction",
    }
)
#: Attribute names (after a dot) the template uses on pandas objects, TA-Lib, numpy and Freqtrade.
TEMPLATE_ATTRIBUTES: Final = frozenset(
    {
        # pandas, as written by Expr.render_python and the template
        "shift",
        "rolling",
        "mean",
        "max",
        "min",
        "notna",
        "astype",
        # numpy
        "arange",
        # Freqtrade's strategy object and the class's own attributes read through ``self``
        "wallets",
        "get_total_stake_amount",
        "startup_candle_count",
        "stoploss",
        "stake_fixed_amount",
        "stake_wallet_fraction",
        "stake_risk_per_trade",
        "stake_max_position_fraction",
    }
)
#: The dotted module names of the template's imports, as identifier tokens.
IMPORT_MODULE_NAMES: Final = frozenset({"__future__", "datetime", "numpy", "talib", "freqtrade", "strategy", "pandas"})
#: Columns the template writes besides the indicator outputs.
SIGNAL_COLUMNS: Final = ("enter_long", "exit_long", "enter_short", "exit_short")

# -- the desk's pre-trade check (render_strategy(..., desk_check=True)) ----------------------------------------

#: The bot config key that carries the check's address and secret: {"port", "deployment_id", "token",
#: "timeout_s"}. A strategy whose config lacks it never calls anything.
DESK_CHECK_KEY: Final = "execdesk_pretrade"
#: The only host the check may call: the URL is this constant + the configured port (as an int) + the path.
DESK_CHECK_HOST: Final = "http://127.0.0.1:"
DESK_CHECK_PATH: Final = "/pretrade"
#: The method that holds the check; the audit accepts the check's imports, names and nodes inside it only.
DESK_CHECK_METHOD: Final = "confirm_trade_entry"
#: The check's log lines (the audit accepts exactly these strings with spaces: nothing else may hold one).
DESK_CHECK_MESSAGES: Final = {
    "no_answer": "entry of %s refused: the desk's pre-trade check gave no usable answer (%r)",
    "denied": "entry of %s refused by the desk's pre-trade check: %s (%s)",
}
#: The modules the check imports (``import json``, ``import logging``, ``import urllib.request``: no alias).
DESK_CHECK_IMPORTS: Final = frozenset({"json", "logging", "urllib.request"})
#: Identifiers of the check: its imports, builtins, parameters and locals (allowed inside its method only,
#: except the method's own name and the annotation ``bool``).
DESK_CHECK_NAMES: Final = frozenset(
    {
        "json",
        "logging",
        "urllib",
        "Exception",
        "bool",
        "int",
        "str",
        "confirm_trade_entry",
        "order_type",
        "amount",
        "rate",
        "time_in_force",
        "desk",
        "log",
        "body",
        "reply",
        "answer",
        "approved",
        "rule",
        "reason",
        "error",
    }
)
#: Attributes the check uses (after a dot).
DESK_CHECK_ATTRIBUTES: Final = frozenset(
    {
        "config",
        "get",
        "getLogger",
        "dp",
        "runmode",
        "value",
        "request",
        "urlopen",
        "dumps",
        "loads",
        "encode",
        "read",
        "warning",
    }
)
#: Keyword arguments of the check's calls.
DESK_CHECK_KEYWORDS: Final = frozenset({"data", "timeout"})

_CLASS_RE = re.compile(r"[A-Z][A-Za-z0-9]{0,127}")
_SIDES: Final = ("long", "short")


@dataclass(frozen=True, slots=True)
class StakeSizing:
    """How the generated strategy sizes each trade (its ``custom_stake_amount``).

    ``method``:

    * ``"fixed"``: ``value`` in stake currency per trade (e.g. 100 USDT);
    * ``"wallet_fraction"``: ``value`` x the wallet's total stake amount
      (``self.wallets.get_total_stake_amount()``), e.g. 0.1 for 10 %;
    * ``"risk"``: the risk manager's fixed-fractional rule with the strategy's stoploss as the stop
      distance: ``equity x value / |stoploss|``, capped at ``equity x max_position_fraction``
      (``value`` is the risk per trade, e.g. 0.01; ``equity`` the wallet's total stake amount).

    The result is never above Freqtrade's ``max_stake`` (the balance available); Freqtrade itself
    skips a trade whose stake falls below the exchange minimum. Without a sizing the strategy keeps
    Freqtrade's own stake (``stake_amount`` of the config). Build with :meth:`fixed`,
    :meth:`wallet_fraction` or :meth:`risk`; invalid values raise :class:`InvalidInput`.
    """

    method: Literal["fixed", "wallet_fraction", "risk"]
    value: float
    max_position_fraction: float = 1.0

    def __post_init__(self) -> None:
        if self.method not in ("fixed", "wallet_fraction", "risk"):
            raise InvalidInput(f"StakeSizing.method must be fixed, wallet_fraction or risk, got {self.method!r}")
        for name in ("value", "max_position_fraction"):
            number = getattr(self, name)
            if isinstance(number, bool) or not isinstance(number, int | float) or not math.isfinite(number):
                raise InvalidInput(f"StakeSizing.{name} must be a finite number, got {number!r}")
            object.__setattr__(self, name, float(number))
        if self.value <= 0:
            raise InvalidInput(f"StakeSizing.value must be > 0, got {self.value!r}")
        if self.method != "fixed" and self.value > 1:
            raise InvalidInput(f"StakeSizing.value must be a ratio in (0, 1] for {self.method}, got {self.value!r}")
        if not 0 < self.max_position_fraction <= 1:
            raise InvalidInput(
                f"StakeSizing.max_position_fraction must be in (0, 1], got {self.max_position_fraction!r}"
            )

    @classmethod
    def fixed(cls, amount: float) -> StakeSizing:
        """A fixed stake of ``amount`` stake currency per trade."""
        return cls("fixed", amount)

    @classmethod
    def wallet_fraction(cls, fraction: float) -> StakeSizing:
        """``fraction`` of the wallet's total stake amount per trade."""
        return cls("wallet_fraction", fraction)

    @classmethod
    def risk(cls, risk_per_trade: float, max_position_fraction: float = 1.0) -> StakeSizing:
        """Risk ``risk_per_trade`` of the wallet between entry and stoploss, capped per position."""
        return cls("risk", risk_per_trade, max_position_fraction)

    def describe(self) -> str:
        """One short line for comments, docstrings and reports."""
        if self.method == "fixed":
            return f"fixed {self.value!r} stake currency per trade"
        if self.method == "wallet_fraction":
            return f"wallet x {self.value!r} per trade"
        return f"wallet x {self.value!r} / |stoploss|, at most wallet x {self.max_position_fraction!r}"

    def as_dict(self) -> dict[str, object]:
        """JSON-safe form."""
        return {"method": self.method, "value": self.value, "max_position_fraction": self.max_position_fraction}


@dataclass(frozen=True, slots=True)
class AuditNames:
    """The identifiers a generated strategy may contain (the review's AST audit whitelist).

    ``names``: identifiers (variables, parameters, class attributes, functions, imports);
    ``attributes``: names after a dot; ``columns``: string keys of ``dataframe[...]``;
    ``talib_functions``: TA-Lib functions the strategy calls (``ta.<fn>``); ``keywords``: keyword
    argument names of those calls (``timeperiod``, ...). ``desk_check``: the strategy carries the desk's
    pre-trade check (its imports, names and nodes are then accepted in :data:`DESK_CHECK_METHOD` only).
    """

    names: frozenset[str]
    attributes: frozenset[str]
    columns: frozenset[str]
    talib_functions: frozenset[str]
    keywords: frozenset[str]
    desk_check: bool = False

    def identifiers(self) -> frozenset[str]:
        """Every identifier token the source may contain (module names of the imports included)."""
        return self.names | self.attributes | self.talib_functions | self.keywords | IMPORT_MODULE_NAMES

    def as_dict(self) -> dict[str, list[str] | bool]:
        """JSON-safe form (sorted lists; ``desk_check`` only when set)."""
        return {
            "names": sorted(self.names),
            "attributes": sorted(self.attributes),
            "columns": sorted(self.columns),
            "talib_functions": sorted(self.talib_functions),
            "keywords": sorted(self.keywords),
            **({"desk_check": True} if self.desk_check else {}),
        }


@dataclass(frozen=True, slots=True)
class GeneratedStrategy:
    """A rendered strategy: ``filename`` (``<name>_v<version>.py``) holding class ``class_name``.

    ``source`` is the Python file, ``readme`` the README.md beside it; ``pairs`` and ``timeframe``
    are the bundle's. ``expected`` holds the
    attribute values Freqtrade should see once it loads the class (the review cross-checks them),
    ``allowed`` the audit whitelist derived from the bundle. ``desk_check``: rendered with the desk's
    pre-trade check (see the module docstring).
    """

    class_name: str
    filename: str
    source: str
    readme: str
    bundle_id: str
    bundle_version: int
    bundle_hash: str
    allowed: AuditNames
    pairs: tuple[str, ...] = ()
    timeframe: str = ""
    expected: Mapping[str, object] = field(default_factory=dict)
    sizing: StakeSizing | None = None
    desk_check: bool = False


def freqtrade_order_types(bundle: StrategyBundle) -> dict[str, str | bool] | None:
    """The bundle's ``order_types`` as Freqtrade's (entries at market; exits as the bundle asks; the stoploss a
    market order, resting on the exchange when the bundle asks), or None: Freqtrade's defaults."""
    types = bundle.order_types
    if types is None:
        return None
    return {"entry": "market", "exit": types.exit, "stoploss": "market",
            "stoploss_on_exchange": types.stoploss_on_exchange}


def class_name_for(bundle: StrategyBundle) -> str:
    """``ema_cross_rsi`` version 2 -> ``EmaCrossRsiV2`` (CamelCase, validated identifier).

    The version is part of the name so two versions can sit in one strategy folder (Freqtrade finds
    a strategy by its class name).
    """
    parts = [p for p in bundle.name.split("_") if p]
    camel = "".join(p[:1].upper() + p[1:] for p in parts) + f"V{bundle.version}"
    if not camel[:1].isalpha():  # a name like "x" always starts with a letter; keep the guarantee
        camel = "S" + camel
    if not (_CLASS_RE.fullmatch(camel) and camel.isidentifier() and camel.isascii()) or keyword.iskeyword(camel):
        raise InvalidInput(f"cannot derive a class name from bundle name {bundle.name!r} (got {camel!r})")
    if camel in TEMPLATE_NAMES:
        raise InvalidInput(f"bundle name {bundle.name!r} gives class name {camel!r}, which the template uses")
    return camel


def render_strategy(
    bundle: StrategyBundle, sizing: StakeSizing | None = None, *, desk_check: bool = False
) -> GeneratedStrategy:
    """Render ``bundle`` as a Freqtrade strategy (INTERFACE_VERSION 3) plus its README.

    ``desk_check``: add the desk's pre-trade check (``confirm_trade_entry``, active only in a bot whose
    config holds :data:`DESK_CHECK_KEY`); for the bots the desk deploys. Plain ``execdesk codegen`` output
    has none. See the module docstring for what goes into the code and how. Raises :class:`InvalidInput`
    when the bundle cannot be rendered (a class name that is no identifier, pairs with different
    quote currencies, attribute names colliding).
    """
    class_name = class_name_for(bundle)
    filename = f"{bundle.name}_v{bundle.version}.py"
    quote = _stake_currency(bundle)
    params = _parameters(bundle)
    indicators = [_indicator_block(name, bundle) for name in bundle.indicators]
    signals = _signal_blocks(bundle)
    can_short = "entry.short" in bundle.expressions
    trailing = bundle.trailing_stop
    order_types = freqtrade_order_types(bundle)
    attribute_names = {p.attribute for p in params} | set(TEMPLATE_NAMES)
    if len(attribute_names) != len(params) + len(TEMPLATE_NAMES):
        raise InvalidInput(f"bundle {bundle.id}: indicator parameter attributes collide with the template's names")
    roi = {key: float(value) for key, value in bundle.minimal_roi.items()}
    context = {
        "template_version": TEMPLATE_VERSION,
        "class_name": class_name,
        "filename": filename,
        "bundle_id": bundle.id,
        "bundle_name": bundle.name,
        "version": bundle.version,
        "hash": bundle.bundle_hash,
        "timeframe": _py_str(bundle.timeframe),
        "timeframe_raw": bundle.timeframe,
        "pairs": list(bundle.pairs),
        "quote": quote,
        "stoploss": repr(float(bundle.stoploss)),
        "minimal_roi": "{" + ", ".join(f"{_py_str(k)}: {v!r}" for k, v in roi.items()) + "}",
        "roi_rows": roi,
        "trailing": trailing,
        "trailing_positive": None if trailing is None else repr(float(trailing.positive)),
        "trailing_offset": None if trailing is None else repr(float(trailing.offset)),
        "trailing_only_offset": None if trailing is None else repr(bool(trailing.only_offset_is_reached)),
        "order_types": None if order_types is None else "{" + ", ".join(
            f"{_py_str(k)}: {_py_str(v) if isinstance(v, str) else repr(v)}" for k, v in order_types.items()) + "}",
        "can_short": can_short,
        "startup": bundle.startup_candles,
        "params": params,
        "indicators": indicators,
        "signals": signals,
        "sizing": sizing,
        "sizing_text": None if sizing is None else sizing.describe(),
        "sizing_value": None if sizing is None else repr(sizing.value),
        "sizing_cap": None if sizing is None else repr(sizing.max_position_fraction),
        "conditions": {key: str(expr) for key, expr in bundle.expressions.items()},
        "description": _fenced(bundle.description),
        "period_start": bundle.validation.period.start.isoformat(),
        "period_end": bundle.validation.period.end.isoformat(),
        "timerange": bundle.validation.period.start.strftime("%Y%m%d")
        + "-"
        + bundle.validation.period.end.strftime("%Y%m%d"),
        "trading_mode": "futures" if (can_short or any(":" in p for p in bundle.pairs)) else "spot",
        "desk_check": desk_check,
        "desk_key": DESK_CHECK_KEY,
        "desk_host": DESK_CHECK_HOST,
        "desk_path": DESK_CHECK_PATH,
        "desk_messages": DESK_CHECK_MESSAGES,
    }
    env = _environment()
    source = env.get_template("strategy.py.j2").render(context)
    readme = env.get_template("README.md.j2").render(context)
    _check_no_backslash(source)
    columns = frozenset(OHLCV) | _outputs(bundle) | frozenset(SIGNAL_COLUMNS)
    talib_functions = frozenset(spec.fn for spec in bundle.indicators.values())
    talib_keywords = frozenset(
        kw
        for spec in bundle.indicators.values()
        for kw in (
            *(k for p in REGISTRY[spec.fn].params.values() for k in p.talib),
            *(REGISTRY[spec.fn].extra_kwargs or {}),
        )
    )
    desk = (DESK_CHECK_NAMES, DESK_CHECK_ATTRIBUTES, DESK_CHECK_KEYWORDS) if desk_check else (frozenset(),) * 3
    allowed = AuditNames(
        names=frozenset(TEMPLATE_NAMES) | frozenset(p.attribute for p in params) | frozenset({class_name}) | desk[0],
        attributes=frozenset(TEMPLATE_ATTRIBUTES) | frozenset(p.attribute for p in params) | talib_functions | desk[1],
        columns=columns,
        talib_functions=talib_functions,
        keywords=talib_keywords | desk[2],
        desk_check=desk_check,
    )
    expected: dict[str, object] = {
        "timeframe": bundle.timeframe,
        "stoploss": float(bundle.stoploss),
        "minimal_roi": {int(k): v for k, v in roi.items()},
        "trailing_stop": trailing is not None,
        "startup_candle_count": bundle.startup_candles,
        "can_short": can_short,
        "process_only_new_candles": True,
        "INTERFACE_VERSION": 3,
    }
    if order_types is not None:
        expected["order_types"] = order_types
    if trailing is not None:
        expected.update(
            {
                "trailing_stop_positive": float(trailing.positive),
                "trailing_stop_positive_offset": float(trailing.offset),
                "trailing_only_offset_is_reached": bool(trailing.only_offset_is_reached),
            }
        )
    return GeneratedStrategy(
        class_name=class_name,
        filename=filename,
        source=source,
        readme=readme,
        bundle_id=bundle.id,
        bundle_version=bundle.version,
        bundle_hash=bundle.bundle_hash,
        allowed=allowed,
        pairs=tuple(bundle.pairs),
        timeframe=bundle.timeframe,
        expected=expected,
        sizing=sizing,
        desk_check=desk_check,
    )


def column_ref(name: str) -> str:
    """The ``ref`` passed to :meth:`Expr.render_python`: ``rsi`` -> ``dataframe["rsi"]``.

    Raises :class:`InvalidInput` for anything but a plain identifier (the bundle validated the
    names already; this keeps the guarantee local).
    """
    if not (name.isidentifier() and name.isascii()) or keyword.iskeyword(name) or name.startswith("_"):
        raise InvalidInput(f"cannot reference series {name!r} in generated code")
    return f'dataframe["{name}"]'


# -- parts ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Param:
    attribute: str
    value: str
    comment: str


@dataclass(frozen=True, slots=True)
class _Block:
    comment: str
    lines: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class _Signal:
    column: str
    key: str
    doc: tuple[str, ...]  # the canonical condition, wrapped, for the docstring
    lines: tuple[str, ...]


def _stake_currency(bundle: StrategyBundle) -> str:
    quotes = sorted({pair.split("/")[1].split(":")[0] for pair in bundle.pairs})
    if len(quotes) != 1:
        raise InvalidInput(
            f"bundle {bundle.id}: pairs quote in {', '.join(quotes)}; one Freqtrade strategy trades one stake currency"
        )
    return quotes[0]


def _outputs(bundle: StrategyBundle) -> frozenset[str]:
    return frozenset(o for name, spec in bundle.indicators.items() for o in output_names(name, spec))


def _parameters(bundle: StrategyBundle) -> list[_Param]:
    params: list[_Param] = []
    for name, spec in bundle.indicators.items():
        for pname, pdef in REGISTRY[spec.fn].params.items():
            if not pdef.talib:  # ``source`` selects an input column, not a TA-Lib parameter
                continue
            value = spec.params[pname]
            rendered = repr(int(value)) if pdef.kind is int else repr(float(value))
            params.append(_Param(f"param_{name}_{pname}", rendered, f"indicators.{name}.{pname}"))
    return params


def _indicator_block(name: str, bundle: StrategyBundle) -> _Block:
    spec = bundle.indicators[name]
    definition = REGISTRY[spec.fn]
    inputs = definition.inputs
    args: list[str] = []
    for pname, pdef in definition.params.items():
        if pname == "source":
            inputs = (str(spec.params[pname]),)
        for talib_kw in pdef.talib:
            args.append(f"{talib_kw}=self.param_{name}_{pname}")
    for talib_kw, value in (definition.extra_kwargs or {}).items():
        args.append(f"{talib_kw}={value!r}")
    inputs_src = [column_ref(c) for c in inputs]
    outputs = [column_ref(o) for o in output_names(name, spec)]
    described = ", ".join(f"{k}={v}" for k, v in spec.params.items())
    comment = f"{name}: {spec.fn}({described}) -> {', '.join(output_names(name, spec))}"
    call_args = [*inputs_src, *args]
    fn = f"ta.{definition.fn}"
    indent = " " * 8
    if len(outputs) == 1:
        one_line = f"{indent}{outputs[0]} = {fn}({', '.join(call_args)})"
        if len(one_line) <= LINE_LENGTH:
            return _Block(comment, (one_line,))
        lines = [f"{indent}{outputs[0]} = {fn}("]
    else:
        one_line = f"{indent}{', '.join(outputs)} = {fn}({', '.join(call_args)})"
        if len(one_line) <= LINE_LENGTH:
            return _Block(comment, (one_line,))
        lines = [f"{indent}("] + [f"{indent}    {o}," for o in outputs] + [f"{indent}) = {fn}("]
    lines += [f"{indent}    {a}," for a in call_args] + [f"{indent})"]
    return _Block(comment, tuple(lines))


def _signal_blocks(bundle: StrategyBundle) -> dict[str, list[_Signal]]:
    blocks: dict[str, list[_Signal]] = {"entry": [], "exit": []}
    for group, prefix in (("entry", "enter"), ("exit", "exit")):
        for side in _SIDES:
            key = f"{group}.{side}"
            expr = bundle.expressions.get(key)
            if expr is None:
                continue
            rendered = expr.render_python(column_ref)
            doc = textwrap.wrap(
                f"{key}: {expr}",
                width=LINE_LENGTH - 8,
                subsequent_indent="    ",
                break_long_words=False,
                break_on_hyphens=False,
            )
            blocks[group].append(_Signal(f"{prefix}_{side}", key, tuple(doc), _wrap_expression(rendered)))
    return blocks


def _wrap_expression(rendered: str) -> tuple[str, ...]:
    """``signal = <rendered>`` in lines of at most LINE_LENGTH.

    A condition's rendering is always enclosed in one outer pair of parentheses; when it does not
    fit one line, that pair is spread over lines and the inside broken at spaces. The rendering
    has no spaces inside string literals (column names are identifiers), so breaking there keeps
    the exact same expression. A run without spaces longer than a line stays whole on its own line
    (ruff's E501 exempts such lines).
    """
    one_line = f"        signal = {rendered}"
    if len(one_line) <= LINE_LENGTH:
        return (one_line,)
    inner = rendered[1:-1] if _enclosed(rendered) else rendered
    indent = " " * 12
    pieces = textwrap.wrap(inner, width=LINE_LENGTH - len(indent), break_long_words=False, break_on_hyphens=False)
    return ("        signal = (", *(indent + piece for piece in pieces), "        )")


def _enclosed(text: str) -> bool:
    """Whether the first character opens a parenthesis closed by the last one."""
    if not (text.startswith("(") and text.endswith(")")):
        return False
    depth = 0
    for i, ch in enumerate(text):
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
            if depth == 0:
                return i == len(text) - 1
    return False


def _py_str(text: str) -> str:
    """A double-quoted Python literal for a validated, plain string."""
    if not re.fullmatch(r"[A-Za-z0-9_./:-]*", text):
        raise InvalidInput(f"refusing to embed {text!r} in generated code")
    return f'"{text}"'


def _fenced(description: str | None) -> str | None:
    if description is None:
        return None
    return description.replace("```", "'''").strip()


def _check_no_backslash(source: str) -> None:
    # Docstrings hold only validated ids, numbers and canonical conditions; a stray backslash or
    # a quote triple would mean a template or renderer bug, so fail loudly rather than emit it.
    if "\\" in source:
        raise InvalidInput("generated source contains a backslash (renderer bug)")


@lru_cache(maxsize=1)
def _environment() -> jinja2.Environment:
    folder = resources.files("execdesk.codegen").joinpath("templates")
    templates = {name: folder.joinpath(name).read_text(encoding="utf-8") for name in ("strategy.py.j2", "README.md.j2")}
    return jinja2.Environment(
        loader=jinja2.DictLoader(templates),
        autoescape=False,  # noqa: S701 — Python and Markdown, not HTML; every value is pre-rendered
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )
