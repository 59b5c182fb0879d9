"""Strategy bundles: a strategy spec plus the validation report (backtest) that approved it.

A bundle is one ``.yaml``/``.yml``/``.json`` file, or a folder holding ``bundle.<ext>`` or
``strategy.<ext>`` plus ``validation.<ext>`` (the report kept separately). :func:`load_bundle`
reads one; :func:`intake` reads a file, a bundle folder or an inbox of them, one result each.

Every problem surfaces as a :class:`~execdesk.errors.SpecError` listing field paths
(``indicators.rsi.period``, ``entry.long``), the offending value and what was expected; document
problems (missing, binary, bad YAML at ``line L, column C``) use the path ``<file>`` or the
position. Expressions are parsed at validation time against the bundle's declared names.
"""

from __future__ import annotations

import hashlib
import json
import keyword
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    StrictBool,
    StrictFloat,
    StrictInt,
    StrictStr,
    TypeAdapter,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from execdesk.errors import FieldIssue, SpecError
from execdesk.strategy._documents import FILE, SUFFIXES, fail, read_document
from execdesk.strategy._issues import issues_error, issues_from_validation_error, short_repr
from execdesk.strategy.expr import FUNCTIONS, OHLCV, Expr, ExpressionError, parse_expression
from execdesk.strategy.indicators import IndicatorSpec, lookback, output_names

TIMEFRAMES = ("1m", "3m", "5m", "15m", "30m", "1h", "2h", "4h", "6h", "8h", "12h", "1d", "3d", "1w")
Timeframe = Literal["1m", "3m", "5m", "15m", "30m", "1h", "2h", "4h", "6h", "8h", "12h", "1d", "3d", "1w"]
#: Names an indicator (or one of its outputs) may not take: candle columns, functions, the columns
#: a Freqtrade strategy writes itself, and Python keywords (they could never appear in expressions).
RESERVED_NAMES = frozenset(
    {*OHLCV, *FUNCTIONS, "date", "enter_long", "enter_short", "exit_long", "exit_short"}
    | {"enter_tag", "exit_tag", *keyword.kwlist}
)
MAX_ISSUES = 50

_ID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
_NAME_RE = re.compile(r"[a-z][a-z0-9_]{0,63}")
_PAIR_RE = re.compile(r"[A-Z0-9]{1,20}/[A-Z0-9]{1,20}(?::[A-Z0-9]{1,20})?")
_DURATION_RE = re.compile(r"(?:\s*\d+(?:\.\d+)?\s*[wdhms]\s*)+")
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)\s*([wdhms])")
_UNIT_MINUTES = {"w": 10080.0, "d": 1440.0, "h": 60.0, "m": 1.0, "s": 1 / 60}


def _matching(pattern: re.Pattern[str], expected: str) -> AfterValidator:
    def check(value: str) -> str:
        if not pattern.fullmatch(value):
            raise ValueError(expected)
        return value

    return AfterValidator(check)


_ISO_DURATION: TypeAdapter[timedelta] = TypeAdapter(timedelta)


def _parse_duration(value: Any) -> Any:
    """``7h``, ``45m``, ``1d 6h``, ``2d``, a number of minutes, or ISO 8601 (``PT7H``) -> timedelta."""
    if isinstance(value, timedelta):
        return value
    expected = "a duration like '7h', '45m', '1d 6h' or a number of minutes"
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ValueError(expected)
    if isinstance(value, str):
        text = value.strip()
        if text[:1] in ("P", "p"):  # ISO 8601, as this model's own JSON dump writes it (``PT7H``)
            try:
                minutes = _ISO_DURATION.validate_python(text.upper()).total_seconds() / 60
            except ValidationError:
                raise ValueError(expected + " (or ISO 8601 like PT7H)") from None
        elif re.fullmatch(r"\d+(?:\.\d+)?", text):
            minutes = float(text)
        elif _DURATION_RE.fullmatch(text):
            minutes = sum(float(n) * _UNIT_MINUTES[u] for n, u in _DURATION_PART.findall(text))
        else:
            raise ValueError(expected)
    else:
        minutes = float(value)
    if not 0 <= minutes <= 10_000_000:  # also rejects NaN
        raise ValueError(expected + " (between 0 and about 19 years)")
    return timedelta(minutes=minutes)


def _date_only(value: Any) -> Any:
    # pydantic would read a bare number as a Unix timestamp; a report period is never that.
    if isinstance(value, int | float):
        raise ValueError("a date like 2024-01-01")
    return value


Id = Annotated[StrictStr, _matching(_ID_RE, "an id of letters, digits, '_', '.', '-' (1-64, e.g. STR-001)")]
Ident = Annotated[StrictStr, _matching(_NAME_RE, "a lowercase identifier like ema_cross (1-64 chars)")]
Pair = Annotated[StrictStr, _matching(_PAIR_RE, "a pair like BTC/USDT or BTC/USDT:USDT (uppercase)")]
Ratio = Annotated[StrictFloat, Field(ge=0.0, le=1.0)]
Duration = Annotated[timedelta, BeforeValidator(_parse_duration)]
Day = Annotated[date, BeforeValidator(_date_only)]


#: a strategy's versions: 1, 2, ... (a bound keeps ids and file names sane)
MAX_VERSION = 1_000_000
#: the days a backtest may span: crypto markets have candles from Bitcoin's first block on
FIRST_DAY, LAST_DAY = date(2009, 1, 3), date(2100, 1, 1)


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class Period(_Model):
    """The backtest window (``start`` before ``end``)."""

    start: Day = Field(description="first day of the backtest, e.g. 2024-01-01")
    end: Day = Field(description="last day of the backtest, after start")

    @model_validator(mode="after")
    def _ordered(self) -> Period:
        for name, day in (("start", self.start), ("end", self.end)):
            if not FIRST_DAY <= day <= LAST_DAY:
                raise issues_error([(name, day.isoformat(), f"a date in [{FIRST_DAY}, {LAST_DAY}]")])
        if self.start >= self.end:
            raise issues_error([("end", self.end.isoformat(), f"a date after start ({self.start})")])
        return self


class ValidationReport(_Model):
    """The backtest that approved the strategy (figures as the validating desk reported them)."""

    period: Period = Field(description="{start: date, end: date}")
    trades: StrictInt = Field(ge=0, description="number of trades, an integer >= 0")
    sharpe: StrictFloat = Field(description="Sharpe ratio, a number")
    max_drawdown: Ratio = Field(description="a ratio in [0, 1]")
    win_rate: Ratio = Field(description="a ratio in [0, 1]")
    profit_factor: StrictFloat = Field(ge=0.0, description="a number >= 0")
    avg_trade_duration: Duration = Field(description="a duration like '7h' or minutes")
    slippage_budget_bps: StrictFloat = Field(ge=0.0, description="basis points >= 0")
    total_profit: StrictFloat | None = None
    pairs: tuple[Pair, ...] | None = None
    returns: tuple[StrictFloat, ...] | None = None
    source: StrictStr | None = Field(default=None, max_length=2000)


class TrailingStop(_Model):
    """Freqtrade's positive trailing stop: trail by ``positive`` once profit exceeds ``offset``."""

    positive: StrictFloat = Field(gt=0.0, lt=1.0, description="a ratio in (0, 1)")
    offset: StrictFloat = Field(lt=1.0, description="a ratio >= positive")
    only_offset_is_reached: StrictBool = False

    @model_validator(mode="after")
    def _offset_covers_positive(self) -> TrailingStop:
        if self.offset < self.positive:
            raise issues_error([("offset", self.offset, f"a ratio >= positive ({self.positive})")])
        return self


SizingMethod = Literal["fixed_fractional", "kelly", "volatility_target"]
#: each method's own settings (others are refused); the defaults when a setting is left out
SIZING_SETTINGS: dict[str, dict[str, float | int | None]] = {
    "fixed_fractional": {"risk_per_trade": None},  # None: the desk's risk.risk_per_trade
    "kelly": {"fraction": 0.5, "cap": 0.25},
    "volatility_target": {"target_risk": 0.01, "atr_period": 14, "atr_multiple": 2.0},
}


class Sizing(_Model):
    """How the risk manager sizes this strategy's entries (:mod:`execdesk.risk.sizing`); without it, fixed
    fractional at the desk's ``risk.risk_per_trade``. Each method takes only its own settings."""

    method: SizingMethod = Field(description="fixed_fractional, kelly or volatility_target")
    risk_per_trade: StrictFloat | None = Field(default=None, gt=0.0, lt=1.0, description="a ratio in (0, 1)")
    fraction: StrictFloat | None = Field(default=None, gt=0.0, le=1.0, description="a ratio in (0, 1]")
    cap: StrictFloat | None = Field(default=None, gt=0.0, le=1.0, description="a ratio in (0, 1]")
    target_risk: StrictFloat | None = Field(default=None, gt=0.0, lt=1.0, description="a ratio in (0, 1)")
    atr_period: StrictInt | None = Field(default=None, ge=2, le=500, description="an integer in [2, 500]")
    atr_multiple: StrictFloat | None = Field(default=None, gt=0.0, le=50.0, description="a number in (0, 50]")

    @model_validator(mode="after")
    def _own_settings(self) -> Sizing:
        own = SIZING_SETTINGS[self.method]
        foreign = sorted(k for k in self.model_fields_set - {"method"} if k not in own)
        if foreign:
            raise issues_error([(k, getattr(self, k), f"a setting of {self.method} ({', '.join(own)})")
                                for k in foreign])
        return self

    def setting(self, name: str) -> Any:
        """A setting of this method: the one given, else its default."""
        value = getattr(self, name)
        return SIZING_SETTINGS[self.method][name] if value is None else value


class OrderTypes(_Model):
    """Which orders carry the strategy's exits (as Freqtrade's ``order_types``). Without it, every exit is a
    market order sent at the close of the candle that decided it.

    ``stoploss_on_exchange``: the stoploss rests at the venue as a stop order from the bar the entry filled in,
    amended as a trailing stop moves, cancelled when another exit goes out, on pause and by the kill switch.
    ``exit``: ``limit`` sends exit signals and ROI exits as limit orders at the backtest's price; one still open
    ``exit_timeout_candles`` candles later is cancelled and the exit sent at market."""

    exit: Literal["market", "limit"] = Field(default="market", description="market or limit")
    stoploss_on_exchange: StrictBool = False
    exit_timeout_candles: StrictInt = Field(default=1, ge=1, le=1000, description="an integer in [1, 1000]")


class SideExpressions(_Model):
    """A condition per side; None means the side is not traded (entry) or not signalled (exit)."""

    long: StrictStr | None = None
    short: StrictStr | None = None


class StrategyBundle(_Model):
    """A strategy spec with its validation report; see the module docstring."""

    id: Id = Field(description="an id like STR-001")
    name: Ident = Field(description="a lowercase identifier like ema_cross_rsi")
    version: StrictInt = Field(ge=1, le=MAX_VERSION, description=f"an integer in [1, {MAX_VERSION}]")
    timeframe: Timeframe = Field(description="one of " + ", ".join(TIMEFRAMES))
    pairs: tuple[Pair, ...] = Field(min_length=1, description="a non-empty list like [BTC/USDT]")
    description: StrictStr | None = Field(default=None, max_length=10_000)
    indicators: dict[StrictStr, IndicatorSpec] = Field(default_factory=dict)
    entry: SideExpressions = Field(description="{long: condition, short: condition}")
    exit: SideExpressions = Field(default_factory=SideExpressions)
    stoploss: StrictFloat = Field(gt=-1.0, lt=0.0, description="a negative ratio in (-1, 0)")
    minimal_roi: dict[str, Annotated[StrictFloat, Field(ge=-1.0)]] = Field(
        description='a mapping of minutes to a ratio, e.g. {"0": 0.1}'
    )
    trailing_stop: TrailingStop | None = None
    sizing: Sizing | None = None
    order_types: OrderTypes | None = None
    validation: ValidationReport = Field(description="the backtest report (period, trades, ...)")

    _exprs: dict[str, Expr] | None = PrivateAttr(default=None)
    _hash: str | None = PrivateAttr(default=None)

    @field_validator("pairs")
    @classmethod
    def _unique_pairs(cls, pairs: tuple[str, ...]) -> tuple[str, ...]:
        seen: set[str] = set()
        dupes: list[tuple[str, object, str]] = []
        for i, pair in enumerate(pairs):
            if pair in seen:
                dupes.append((str(i), pair, "pairs listed once"))
            seen.add(pair)
        if dupes:
            raise issues_error(dupes)
        return pairs

    @field_validator("indicators")
    @classmethod
    def _indicator_names(cls, indicators: dict[str, IndicatorSpec]) -> dict[str, IndicatorSpec]:
        issues: list[tuple[str, object, str]] = []
        owner: dict[str, str] = {}
        for name, spec in indicators.items():
            if not _NAME_RE.fullmatch(name):
                issues.append((name, name, "a lowercase identifier like ema_fast (1-64 chars)"))
                continue
            for output in output_names(name, spec):
                if output in RESERVED_NAMES:
                    issues.append((name, output, "a name that is not a column, function or keyword"))
                elif output in owner:
                    issues.append((name, output, f"a name not already provided by indicators.{owner[output]}"))
                else:
                    owner[output] = name
        if issues:
            raise issues_error(issues)
        return indicators

    @field_validator("entry", "exit")
    @classmethod
    def _expressions(cls, sides: SideExpressions, info: ValidationInfo) -> SideExpressions:
        indicators = info.data.get("indicators")
        # With invalid indicators the declared names are unknown: parsing now would only add
        # spurious "unknown name" noise to the indicator issues already reported.
        names = None if indicators is None else _declared_names(indicators)
        issues: list[tuple[str, object, str]] = []
        entry = info.data.get("entry")
        for side in ("long", "short"):
            text = getattr(sides, side)
            if text is None:
                continue
            if info.field_name == "exit" and entry is not None and getattr(entry, side) is None:
                issues.append((side, text, f"no exit.{side} without an entry.{side}"))
                continue
            try:
                if names is not None:
                    parse_expression(text, names)
            except ExpressionError as exc:
                issues.append((side, text, f"a valid expression: {exc}"))
        if info.field_name == "entry" and sides.long is None and sides.short is None:
            issues.append(("", sides.model_dump(), "at least one of entry.long, entry.short"))
        if issues:
            raise issues_error(issues)
        return sides

    @field_validator("minimal_roi", mode="before")
    @classmethod
    def _roi_minutes(cls, value: Any) -> Any:
        if not isinstance(value, Mapping):
            return value  # pydantic reports the type
        issues: list[tuple[str, object, str]] = []
        table: dict[int, Any] = {}
        for key, ratio in value.items():
            minutes = _minutes_key(key)
            if minutes is None:
                issues.append((str(key), key, 'minutes as a non-negative integer key, e.g. "60"'))
            elif minutes in table:
                issues.append((str(key), key, "each minute listed once"))
            else:
                table[minutes] = ratio
        if issues:
            raise issues_error(issues)
        return {str(m): table[m] for m in sorted(table)}

    # -- derived -------------------------------------------------------------------------------

    @property
    def declared_names(self) -> frozenset[str]:
        """Every series an expression may read: OHLCV columns and indicator outputs."""
        return _declared_names(self.indicators)

    @property
    def expressions(self) -> Mapping[str, Expr]:
        """Parsed conditions keyed ``entry.long``, ``exit.short``, ... (sides present only)."""
        if self._exprs is None:
            names = self.declared_names
            parsed: dict[str, Expr] = {}
            for group, sides in (("entry", self.entry), ("exit", self.exit)):
                for side in ("long", "short"):
                    text = getattr(sides, side)
                    if text is not None:
                        parsed[f"{group}.{side}"] = parse_expression(text, names)
            self._exprs = parsed
        return self._exprs

    @property
    def startup_candles(self) -> int:
        """Bars before the first meaningful signal: the longest indicator lookback plus the
        longest shift/window/cross lookback of any condition (a conservative sum)."""
        indicator = max((lookback(spec) for spec in self.indicators.values()), default=0)
        shifts = max((e.max_shift() for e in self.expressions.values()), default=0)
        return indicator + shifts

    @property
    def bundle_hash(self) -> str:
        """sha256 (hex) of the canonical JSON; independent of key order and formatting."""
        if self._hash is None:
            text = json.dumps(self.to_canonical_dict(), sort_keys=True, separators=(",", ":"))
            self._hash = hashlib.sha256(text.encode("utf-8")).hexdigest()
        return self._hash

    def to_canonical_dict(self) -> dict[str, Any]:
        """JSON-safe normalised form: keys sorted, dates ISO, durations in minutes, conditions in
        canonical form, absent optional fields omitted (so adding one later keeps old hashes)."""
        data = self.model_dump(mode="python", exclude_none=True)
        for group in ("entry", "exit"):
            data[group] = {side: str(self.expressions[f"{group}.{side}"]) for side in data[group]}
        report = data["validation"]
        report["period"] = {k: v.isoformat() for k, v in report["period"].items()}
        minutes = self.validation.avg_trade_duration.total_seconds() / 60
        report["avg_trade_duration"] = int(minutes) if minutes.is_integer() else minutes
        return _sorted(data)  # also turns tuples into lists


def _declared_names(indicators: Mapping[str, IndicatorSpec]) -> frozenset[str]:
    outputs = (o for name, spec in indicators.items() for o in output_names(name, spec))
    return frozenset((*OHLCV, *outputs))


def _minutes_key(key: object) -> int | None:
    if isinstance(key, bool):
        return None
    if isinstance(key, int):
        return key if key >= 0 else None
    if isinstance(key, str) and key.strip().isdigit() and key.strip().isascii():
        return int(key.strip())
    return None


def _sorted(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _sorted(value[k]) for k in sorted(value)}
    if isinstance(value, list | tuple):
        return [_sorted(v) for v in value]
    return value


# -- loading -----------------------------------------------------------------------------------


def load_bundle(path: Path) -> StrategyBundle:
    """Read and validate one bundle (a file or a bundle folder); raises :class:`SpecError`."""
    path = Path(path)
    if path.is_dir():
        return _validate(_read_folder(path), str(path))
    if path.exists() and path.suffix.lower() not in SUFFIXES:
        raise fail(path, FILE, repr(path.name), "a .yaml, .yml or .json file, or a bundle folder")
    return _validate(read_document(path), str(path))


def validate_bundle(data: Any, source: str = "<bundle>") -> StrategyBundle:
    """Validate already-parsed bundle data (a mapping); raises :class:`SpecError`."""
    return _validate(data, source)


def _validate(data: Any, source: str) -> StrategyBundle:
    if not isinstance(data, dict):
        fields = ", ".join(StrategyBundle.model_fields)
        raise SpecError(source, [FieldIssue("<root>", _kind(data), f"a mapping of bundle fields ({fields})")])
    try:
        return StrategyBundle.model_validate(data)
    except ValidationError as exc:
        issues = issues_from_validation_error(exc, StrategyBundle)
    if len(issues) > MAX_ISSUES:
        extra = len(issues) - MAX_ISSUES
        issues = [*issues[:MAX_ISSUES], FieldIssue("<more>", f"{extra} further issues", "fewer problems")]
    raise SpecError(source, issues)


def _kind(data: Any) -> str:
    return f"{type(data).__name__} {short_repr(data)}"


def _find(folder: Path, stem: str) -> Path | None:
    found = [folder / f"{stem}{ext}" for ext in SUFFIXES if (folder / f"{stem}{ext}").is_file()]
    if len(found) > 1:
        names = ", ".join(p.name for p in found)
        raise fail(folder, FILE, names, f"exactly one {stem}.yaml|yml|json")
    return found[0] if found else None


def is_bundle_folder(folder: Path) -> bool:
    """Whether ``folder`` holds ``bundle.<ext>`` or ``strategy.<ext>``."""
    return any((folder / f"{stem}{ext}").is_file() for stem in ("bundle", "strategy") for ext in SUFFIXES)


def _read_folder(folder: Path) -> Any:
    whole = _find(folder, "bundle")
    strategy = _find(folder, "strategy")
    if whole is not None:
        if strategy is not None:
            raise fail(folder, FILE, f"{whole.name} and {strategy.name}", "either bundle.* or strategy.*")
        return read_document(whole)
    if strategy is None:
        raise fail(folder, FILE, repr(str(folder)), "a folder with bundle.yaml, or strategy.yaml and validation.yaml")
    data = read_document(strategy)
    report = _find(folder, "validation")
    if report is None or not isinstance(data, dict):
        return data  # _validate reports the missing report or the non-mapping document
    if "validation" in data:
        raise fail(folder, "validation", "given twice", f"the report in {report.name} or {strategy.name}, not both")
    return {**data, "validation": read_document(report)}


@dataclass(frozen=True, slots=True)
class IntakeResult:
    """One candidate of an intake: the bundle, or the error explaining its rejection."""

    path: Path
    bundle: StrategyBundle | None
    error: SpecError | None

    @property
    def ok(self) -> bool:
        """Whether the candidate was accepted."""
        return self.bundle is not None


def intake(path: Path) -> list[IntakeResult]:
    """Load a bundle file, a bundle folder, or every bundle in an inbox folder, independently.

    In an inbox, each ``*.yaml``/``*.yml``/``*.json`` file and each bundle sub-folder is taken or
    rejected on its own (sorted by name); other entries and dot-files are ignored.
    """
    path = Path(path)
    if not path.is_dir() or is_bundle_folder(path):
        return [_take(path)]
    candidates = [
        entry
        for entry in sorted(path.iterdir(), key=lambda p: p.name)
        if not entry.name.startswith(".")
        and ((entry.is_file() and entry.suffix.lower() in SUFFIXES) or (entry.is_dir() and is_bundle_folder(entry)))
    ]
    return [_take(entry) for entry in candidates]


def _take(path: Path) -> IntakeResult:
    try:
        return IntakeResult(path, load_bundle(path), None)
    except SpecError as exc:
        return IntakeResult(path, None, exc)
