"""The bundled, seeded generator of realistic crypto candles (the demo and the tests run on it).

Model, per pair and bar (log prices; ``dt`` is the bar length in years of 365 days, so every
volatility scales with the square root of the timeframe and every timeframe works):

* **Market factor.** One series shared by all pairs, drawn from ``seed`` + timeframe + period only:
  Student-t(4) innovations with annual volatility :data:`MARKET_VOL`, plus rare market jumps.
  A pair loads on it by ``beta``; its idiosyncratic part gets the remaining variance,
  ``sqrt(annual_vol² - (beta·MARKET_VOL)²)``, floored at 30 % of ``annual_vol`` so each pair keeps
  noise of its own (when the floor bites, the pair's total volatility exceeds ``annual_vol``).
  Default pairs (vol 0.8, beta 1) correlate at about 0.55, as large caps do. Realised volatility
  lands within ~10 % of ``annual_vol`` (regimes, jumps and the bid-ask bounce move it a little).
* **Volatility clustering.** Stochastic volatility: log-vol is the sum of a fast (4 h) and a slow
  (10 day) AR(1) component. A pair's idiosyncratic log-vol shares 60 % of the market's, so
  volatility spikes hit all pairs together.
* **Fat tails.** Student-t innovations (``tail_df``, default 4) plus Poisson jumps.
* **Regimes.** trend_up / trend_down add a persistent drift of ``6·annual_vol·strength`` a year;
  range and chop make the noise mean-revert (half-life ~17 h for range, ~3 h and 1.3x volatility for
  chop) toward an anchor that itself wanders slowly. Outside forced :class:`RegimeSpan` s a seeded
  Markov chain switches regimes (mean durations 4-7 days for trends and ranges, 1.5 days for chop).
* **Shocks.** A :class:`Shock` moves the price by ``move`` spread evenly (in log terms) over
  ``bars`` candles, then volatility decays from ``vol_multiplier`` back to normal over
  ``decay_bars``. Jumps and shocks are permanent: mean reversion never pulls them back.
* **Volume.** Lognormal around ``base_volume`` (per day, scaled to the bar), rising with the bar's
  volatility and with ``|return|``, with slow persistent swings, a daily cycle (busiest around
  15:00 UTC) and quieter weekends.
* **Candles.** Closes scatter around the efficient price (bid-ask bounce: slightly negative lag-1
  return autocorrelation, as in real 5m data); open = previous close in half the bars, else off by
  a tiny gap; high and low follow the exact law of the max / min of a Brownian bridge between open
  and close at the bar's volatility (plus rare long liquidation wicks), so high >= max(open, close)
  and low <= min(open, close). Prices are exponentials of the log path: always positive.

Randomness: every drawn array has its own ``numpy.random.Generator(PCG64)`` seeded with a
``SeedSequence`` of (seed, market or pair, timeframe, first candle time, component); a pair is keyed
by ``zlib.crc32`` of its name, never ``hash()``. Hence the same arguments give bit-identical frames,
adding a pair leaves the others unchanged, forcing a regime or a shock changes only what it forces,
and (everything being causal) a later ``end`` only appends candles.

Config objects are frozen dataclasses rather than pydantic models: they are built in code, not
parsed from files, and validate themselves on construction with errors naming the field.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from numbers import Real
from types import MappingProxyType
from typing import Any, Final, Literal, get_args

import numpy as np
import numpy.typing as npt
import pandas as pd

from execdesk.data.candles import CANDLE_COLUMNS, dates_from_epoch_seconds, validate_candles
from execdesk.data.timeframes import ceil_epoch, timeframe_to_seconds
from execdesk.errors import InvalidInput

RegimeKind = Literal["trend_up", "trend_down", "range", "chop"]
REGIME_KINDS: Final[tuple[str, ...]] = get_args(RegimeKind)
_TREND_UP, _TREND_DOWN, _RANGE, _CHOP = range(4)

MARKET_VOL: Final = 0.6  # annualised volatility of the common market factor
_YEAR: Final = 365.0 * 86400.0  # crypto trades every day
_HOUR: Final = 3600.0
_MAX_CANDLES: Final = 20_000_000  # ~1 GB of intermediates: a larger request is surely a mistake
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_F = npt.NDArray[np.float64]

# Stochastic volatility: (time constant, stationary sd of log-vol) for the fast and slow parts.
_SV_FAST: Final = (4 * _HOUR, 0.5)
_SV_SLOW: Final = (10 * 86400.0, 0.40)
_SV_VAR: Final = _SV_FAST[1] ** 2 + _SV_SLOW[1] ** 2
_MARKET_VOL_SHARE: Final = 0.6  # weight of market log-vol in idiosyncratic log-vol (own: 0.8)
_IDIO_FLOOR: Final = 0.3
_MARKET_JUMPS: Final = (4.0, -0.005, 0.04)  # per year, mean and sd of the log jump (crashes skew down)
_JUMP_VOL_TAU: Final = 12 * _HOUR  # after a jump volatility doubles, decaying with this constant
_TREND_DRIFT: Final = 6.0  # trend drift per year, in units of annual_vol
_REVERT_TAU: Final = {_RANGE: 24 * _HOUR, _CHOP: 4 * _HOUR}  # OU time constants at strength 1
_REGIME_VOL: Final = np.array([1.0, 1.15, 0.85, 1.3])  # trends down are wilder, ranges calmer
_ANCHOR_SHARE: Final = 0.25  # the range anchor wanders at this fraction of the bar volatility
_REGIME_HOURS: Final = np.array([120.0, 96.0, 168.0, 36.0])  # mean regime durations
_REGIME_NEXT: Final = np.array(
    [[0.0, 0.15, 0.65, 0.2], [0.15, 0.0, 0.65, 0.2], [0.4, 0.4, 0.0, 0.2], [0.3, 0.3, 0.4, 0.0]]
)
# Microstructure noise has a fixed size, not one growing with the bar: both are given in 5m-bar
# volatilities and shrink relative to longer bars by sqrt(300 s / bar length).
_GAP: Final = (0.5, 0.02)  # chance that open != previous close, and the gap size
_BOUNCE: Final = 0.3  # close = efficient price + noise of this size (bid-ask bounce)
_SPIKE: Final = (0.003, 4.0)  # chance of a liquidation wick per bar side, and how much longer it is
_VOLUME_NOISE: Final = 0.5  # sd of the iid lognormal volume noise
_VOLUME_SWING: Final = (2 * 86400.0, 0.4)  # slow volume swings: time constant, sd
_VOLUME_ON_VOL: Final = 1.0  # elasticity of volume to bar volatility
_VOLUME_ON_MOVE: Final = 0.3  # log-volume per bar volatility of |return|


def _first_order(x: Any, phi: float, carry: float) -> Any:
    # A plain loop on Python floats: the same IEEE arithmetic, in the same order, as scipy's C
    # filter (bit-identical output), without scipy.signal's or numba's half-second start-up.
    out: list[float] = []
    append = out.append
    prev = carry
    for value in x.tolist():
        prev = value + prev
        append(prev)
        prev = phi * prev
    return np.array(out, dtype=np.float64)


def lfilter(b: Sequence[float], a: Sequence[float], x: Any, zi: Any = None) -> Any:
    """The first-order recursion ``y[n] = x[n] + phi * y[n-1]`` that the generator's AR(1) terms use,
    with ``scipy.signal.lfilter``'s call shape (``b = [1]``, ``a = [1, -phi]``, optional initial
    state ``zi``) and its results, without importing scipy.signal (half a second at start-up)."""
    if len(b) != 1 or b[0] != 1.0 or len(a) != 2 or a[0] != 1.0:
        raise ValueError("only first-order recursions y[n] = x[n] + phi * y[n-1] are supported")
    phi = -float(a[1])
    values = np.ascontiguousarray(x, dtype=np.float64)
    carry = 0.0 if zi is None else float(np.asarray(zi, dtype=np.float64)[0])
    out = _first_order(values, phi, carry)
    return out if zi is None else (out, np.array([phi * out[-1]]) if len(out) else np.asarray(zi))


def _require(ok: bool, field: str, expected: str, value: object) -> None:
    if not ok:
        raise InvalidInput(f"{field} must be {expected}, got {value!r}")


def _finite(field: str, value: float, low: float | None = None, *, strict: bool = True) -> None:
    ok = isinstance(value, Real) and not isinstance(value, bool) and math.isfinite(value)
    if ok and low is not None:
        ok = value > low if strict else value >= low
    bound = "" if low is None else f" {'>' if strict else '>='} {low:g}"
    _require(ok, field, f"a finite number{bound}", value)


def _count(field: str, value: int, low: int) -> None:
    ok = isinstance(value, int) and not isinstance(value, bool) and value >= low
    _require(ok, field, f"an int >= {low}", value)


def _aware(field: str, value: object) -> None:
    ok = isinstance(value, datetime) and value.utcoffset() is not None
    _require(ok, field, "a timezone-aware datetime (UTC)", value)


@dataclass(frozen=True, slots=True, kw_only=True)
class PairProfile:
    """How one pair behaves. ``start_price`` and ``base_volume`` are required (keyword-only).

    ``annual_vol`` is the total annualised volatility, ``beta`` the loading on the market factor,
    ``drift`` the annualised drift of the log price, ``base_volume`` the typical volume per *day* in
    base-asset units, ``jumps_per_year`` / ``jump_size`` the rate and log-size sd of idiosyncratic
    jumps, ``tail_df`` the Student-t degrees of freedom of the idiosyncratic noise (> 2).
    """

    start_price: float
    annual_vol: float = 0.8
    beta: float = 1.0
    drift: float = 0.0
    base_volume: float
    jumps_per_year: float = 6.0
    jump_size: float = 0.03
    tail_df: float = 4.0

    def __post_init__(self) -> None:
        for field in ("start_price", "annual_vol", "base_volume"):
            _finite(f"PairProfile.{field}", getattr(self, field), 0.0)
        for field in ("jumps_per_year", "jump_size"):
            _finite(f"PairProfile.{field}", getattr(self, field), 0.0, strict=False)
        _finite("PairProfile.beta", self.beta)
        _finite("PairProfile.drift", self.drift)
        _finite("PairProfile.tail_df", self.tail_df, 2.0)  # finite variance


@dataclass(frozen=True, slots=True)
class RegimeSpan:
    """Force regime ``kind`` on a pair for the candles opening in [start, end).

    ``strength`` scales the trend drift (trends) or the speed of mean reversion (range, chop).
    """

    start: datetime
    end: datetime
    kind: RegimeKind
    strength: float = 1.0

    def __post_init__(self) -> None:
        _aware("RegimeSpan.start", self.start)
        _aware("RegimeSpan.end", self.end)
        _require(self.start < self.end, "RegimeSpan.end", f"after start {self.start}", self.end)
        _require(self.kind in REGIME_KINDS, "RegimeSpan.kind", f"one of {', '.join(REGIME_KINDS)}", self.kind)
        _finite("RegimeSpan.strength", self.strength, 0.0)


@dataclass(frozen=True, slots=True)
class Shock:
    """A scheduled market event: the price moves by ``move`` (-0.35 = falls 35 %) over ``bars``
    candles starting with the candle containing ``at``; volatility is then ``vol_multiplier`` times
    normal and decays back over ``decay_bars`` candles. ``pairs`` None hits every pair.

    A shock running past the end of the period is cut off there (only part of the move happens).
    """

    at: datetime
    move: float
    bars: int = 3
    pairs: tuple[str, ...] | None = None
    vol_multiplier: float = 3.0
    decay_bars: int = 48

    def __post_init__(self) -> None:
        _aware("Shock.at", self.at)
        _finite("Shock.move", self.move, -1.0)  # a fall of 100 % leaves no price
        _count("Shock.bars", self.bars, 1)
        _count("Shock.decay_bars", self.decay_bars, 0)
        _finite("Shock.vol_multiplier", self.vol_multiplier, 1.0, strict=False)
        if self.pairs is not None:
            names = self.pairs
            ok = not isinstance(names, str) and all(isinstance(p, str) for p in names)
            _require(ok, "Shock.pairs", "a tuple of pair names or None", names)
            object.__setattr__(self, "pairs", tuple(names))


_Regimes = Mapping[str, Sequence[RegimeSpan]]
_NO_REGIMES: Final[_Regimes] = MappingProxyType({})


@dataclass(frozen=True, slots=True)
class _Grid:
    """The candle open times being generated: ``first + k·step`` for k < n (epoch seconds)."""

    step: int
    first: int
    n: int

    def index_at(self, moment: datetime) -> int:
        """Index of the candle containing ``moment`` (may be out of range)."""
        return (_micros(moment) - self.first * 1_000_000) // (self.step * 1_000_000)

    def index_from(self, moment: datetime) -> int:
        """Index of the first candle opening at or after ``moment``, clipped to [0, n]."""
        offset = _micros(moment) - self.first * 1_000_000
        return min(max(-(-offset // (self.step * 1_000_000)), 0), self.n)


@dataclass(frozen=True, slots=True)
class _Market:
    seed: int
    z: _F  # standardised innovations
    logvol: _F  # log-vol deviation (mean 0, variance ``logvol_var``)
    logvol_var: float
    jumps: _F


def _micros(moment: datetime) -> int:
    return (moment - _EPOCH) // timedelta(microseconds=1)


def _rng(entropy: Sequence[int], component: int) -> np.random.Generator:
    # One stream per drawn array: numpy draws element by element, so each array is a prefix of its
    # longer self, and extending ``end`` appends candles without changing the earlier ones.
    key = [k & 0xFFFF_FFFF_FFFF_FFFF for k in entropy]
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence(key, spawn_key=(component,))))


def _ar1(rng: np.random.Generator, n: int, tau: float, sd: float, step: int) -> _F:
    """Stationary AR(1) with time constant ``tau`` seconds and stationary sd ``sd``, started in law."""
    phi = math.exp(-step / tau)
    x0 = rng.normal(0.0, sd)
    shocks = rng.normal(0.0, sd * math.sqrt(1.0 - phi * phi), n)
    out, _ = lfilter([1.0], [1.0, -phi], shocks, zi=[phi * x0])
    return np.asarray(out, dtype=np.float64)


def _student(rng: np.random.Generator, df: float, n: int) -> _F:
    return rng.standard_t(df, n) / math.sqrt(df / (df - 2.0))


def _jumps(entropy: Sequence[int], c: int, n: int, per_year: float, mean: float, sd: float, step: int) -> _F:
    hit = _rng(entropy, c).random(n) < -math.expm1(-per_year * step / _YEAR)
    return np.where(hit, _rng(entropy, c + 1).normal(mean, sd, n), 0.0)


def _logvol(entropy: Sequence[int], grid: _Grid) -> _F:
    """Fast plus slow log-vol deviation (components 1 and 2); its variance is :data:`_SV_VAR`."""
    fast = _ar1(_rng(entropy, 1), grid.n, *_SV_FAST, grid.step)
    return fast + _ar1(_rng(entropy, 2), grid.n, *_SV_SLOW, grid.step)


def _make_market(seed: int, grid: _Grid) -> _Market:
    entropy = (seed, 0, grid.step, grid.first)
    per_year, mean, sd = _MARKET_JUMPS
    return _Market(
        seed=seed,
        z=_student(_rng(entropy, 0), 4.0, grid.n),
        logvol=_logvol(entropy, grid),
        logvol_var=_SV_VAR,
        jumps=_jumps(entropy, 3, grid.n, per_year, mean, sd, grid.step),
    )


def _regimes(rng: np.random.Generator, grid: _Grid, spans: Sequence[RegimeSpan]) -> tuple[npt.NDArray[np.int8], _F]:
    """Per-candle regime codes and strengths: the Markov chain, then the forced spans on top."""
    codes = np.empty(grid.n, dtype=np.int8)
    state = int(rng.choice(4, p=[0.25, 0.2, 0.4, 0.15]))
    pos = 0
    while pos < grid.n:
        length = max(1, math.ceil(rng.exponential(_REGIME_HOURS[state] * _HOUR) / grid.step))
        codes[pos : pos + length] = state
        pos += length
        state = int(rng.choice(4, p=_REGIME_NEXT[state]))
    strength = np.ones(grid.n)
    for span in spans:
        lo, hi = grid.index_from(span.start), grid.index_from(span.end)
        codes[lo:hi] = REGIME_KINDS.index(span.kind)
        strength[lo:hi] = span.strength
    return codes, strength


def _shock_effects(shocks: Sequence[Shock], grid: _Grid, pair: str) -> tuple[_F, _F]:
    """Per-candle log moves and volatility multipliers of the shocks hitting ``pair``."""
    moves = np.zeros(grid.n)
    excess = np.zeros(grid.n)
    for shock in (s for s in shocks if s.pairs is None or pair in s.pairs):
        k = grid.index_at(shock.at)
        moves[k : k + shock.bars] += math.log1p(shock.move) / shock.bars
        excess[k : k + shock.bars] += shock.vol_multiplier - 1.0
        lo, hi = k + shock.bars, min(k + shock.bars + shock.decay_bars, grid.n)
        after = np.arange(1, max(hi - lo, 0) + 1)
        # Decays to 5 % of the excess at decay_bars, then stops.
        excess[lo:hi] += (shock.vol_multiplier - 1.0) * np.exp(-after * math.log(20.0) / max(shock.decay_bars, 1))
    return moves, 1.0 + excess


def _revert(noise: _F, codes: npt.NDArray[np.int8], strength: _F, anchor: _F, step: int) -> _F:
    """Increments of the noise path, with the range / chop stretches made mean-reverting."""
    out = noise.copy()
    edges = np.flatnonzero((codes[1:] != codes[:-1]) | (strength[1:] != strength[:-1])) + 1
    starts = np.r_[0, edges]
    ends = np.r_[edges, len(codes)]
    for a, b in zip(starts.tolist(), ends.tolist(), strict=True):
        code = int(codes[a])
        if code not in _REVERT_TAU:
            continue
        phi = math.exp(-step * strength[a] / _REVERT_TAU[code])
        # Deviation from the anchor is an AR(1) of the noise started at 0 at the stretch start, so
        # the price is continuous across regime changes; its increments replace the raw noise.
        # AR(1) increments have variance 2/(1+phi) times the innovations': rescale so a range is
        # as volatile bar to bar as any market, only going nowhere.
        deviation = lfilter([1.0], [1.0, -phi], noise[a:b] * math.sqrt((1.0 + phi) / 2.0))
        out[a:b] = np.diff(deviation, prepend=0.0) + anchor[a:b]
    return out


def _wick(entropy: Sequence[int], c: int, body: _F, sigma: _F, up: bool) -> _F:
    """Log excursion of the bar's extreme beyond its body, from the Brownian-bridge law.

    For a bridge from 0 to ``b`` with volatility s, P(max > m) = exp(-2 m (m - b) / s²), so
    max = (b + sqrt(b² - 2 s² ln U)) / 2 for U uniform on (0, 1]; the minimum mirrors it.
    """
    u = 1.0 - _rng(entropy, c).random(len(body))
    root = np.sqrt(body * body - 2.0 * sigma * sigma * np.log(u))
    extreme = (body + root) / 2.0 if up else (root - body) / 2.0
    beyond = extreme - (np.maximum(body, 0.0) if up else np.maximum(-body, 0.0))
    chance, factor = _SPIKE
    return np.where(_rng(entropy, c + 1).random(len(body)) < chance, beyond * factor, beyond)


def _volume_season(times: npt.NDArray[np.int64], step: int) -> _F:
    """Log-volume seasonality: a daily cycle peaking ~15:00 UTC and quieter weekends."""
    middle = times + step // 2
    season = np.zeros(len(times))
    if step < 86400:
        hours = (middle % 86400) / _HOUR
        season += 0.2 * np.cos(2.0 * np.pi * (hours - 15.0) / 24.0)
    if step <= 86400:
        weekday = (middle // 86400 + 3) % 7  # 1970-01-01 was a Thursday; Monday = 0
        season += np.where(weekday >= 5, -0.25, 0.0)
    return season


def _make_pair(
    pair: str, profile: PairProfile, market: _Market, grid: _Grid, shocks: Sequence[Shock], spans: Sequence[RegimeSpan]
) -> pd.DataFrame:
    n, step = grid.n, grid.step
    entropy = (market.seed, 1, zlib.crc32(pair.encode("utf-8")), step, grid.first)
    dt = step / _YEAR

    # Volatility: market and idiosyncratic parts, each with its own clustering.
    systematic = profile.beta * MARKET_VOL
    idio_vol = math.sqrt(max(profile.annual_vol**2 - systematic**2, (_IDIO_FLOOR * profile.annual_vol) ** 2))
    idio_logvol = _MARKET_VOL_SHARE * market.logvol + 0.8 * _logvol(entropy, grid)
    idio_var = (_MARKET_VOL_SHARE**2 + 0.64) * _SV_VAR
    # exp(h - var) has mean square 1 for normal h, so volatility levels stay calibrated on average.
    sys_sigma = systematic * math.sqrt(dt) * np.exp(market.logvol - market.logvol_var)
    idio_sigma = idio_vol * math.sqrt(dt) * np.exp(idio_logvol - idio_var)

    codes, strength = _regimes(_rng(entropy, 3), grid, spans)
    shock_moves, shock_vol = _shock_effects(shocks, grid, pair)
    own_jumps = _jumps(entropy, 4, n, profile.jumps_per_year, 0.0, profile.jump_size, step)
    jumps = profile.beta * market.jumps + own_jumps
    jump_phi = math.exp(-step / _JUMP_VOL_TAU)
    jump_vol = 1.0 + lfilter([1.0], [1.0, -jump_phi], (jumps != 0.0).astype(np.float64))
    scale = _REGIME_VOL[codes] * shock_vol * jump_vol

    noise = scale * (sys_sigma * market.z + idio_sigma * _student(_rng(entropy, 0), profile.tail_df, n))
    sigma = scale * np.hypot(sys_sigma, idio_sigma)
    anchor = _ANCHOR_SHARE * sigma * _rng(entropy, 6).standard_normal(n)
    trend = np.where(codes == _TREND_UP, 1.0, np.where(codes == _TREND_DOWN, -1.0, 0.0))
    drift = (profile.drift + trend * strength * _TREND_DRIFT * profile.annual_vol) * dt
    step_log = _revert(noise, codes, strength, anchor, step) + drift + jumps + shock_moves

    # Prints scatter around the efficient price (bid-ask bounce): lag-1 return autocorrelation < 0.
    tick = sigma * math.sqrt(min(1.0, 300.0 / step))
    bounce = _BOUNCE * tick * _rng(entropy, 7).standard_normal(n)
    close_log = math.log(profile.start_price) + np.cumsum(step_log) + bounce
    prev_close = np.r_[math.log(profile.start_price), close_log[:-1]]
    gaps = _GAP[1] * tick * _rng(entropy, 9).standard_normal(n)
    open_log = prev_close + np.where(_rng(entropy, 8).random(n) < _GAP[0], gaps, 0.0)
    body = close_log - open_log
    high_log = open_log + np.maximum(body, 0.0) + _wick(entropy, 10, body, sigma, up=True)
    low_log = open_log - np.maximum(-body, 0.0) - _wick(entropy, 12, body, sigma, up=False)
    open_, close = np.exp(open_log), np.exp(close_log)
    # exp rounding could put an extreme a hair inside the body: clamp so OHLC is exactly consistent.
    high = np.maximum(np.exp(high_log), np.maximum(open_, close))
    low = np.minimum(np.exp(low_log), np.minimum(open_, close))

    times = grid.first + np.arange(n, dtype=np.int64) * step
    nominal = profile.annual_vol * math.sqrt(dt)
    move = np.minimum(np.abs(step_log) / sigma, 8.0)
    log_volume = (
        math.log(profile.base_volume * step / 86400.0)
        + _VOLUME_ON_VOL * np.log(sigma / nominal)
        + _VOLUME_ON_MOVE * (move - 0.8)  # 0.8 ~ E|z|: keeps the level near base_volume
        + _ar1(_rng(entropy, 14), n, *_VOLUME_SWING, step)
        + _VOLUME_NOISE * _rng(entropy, 15).standard_normal(n)
        + _volume_season(times, step)
        - 0.5 * (_VOLUME_NOISE**2 + _VOLUME_SWING[1] ** 2)
    )
    columns = (dates_from_epoch_seconds(times), open_, high, low, close, np.exp(log_volume))
    frame = pd.DataFrame(dict(zip(CANDLE_COLUMNS, columns, strict=True)))
    # Cheap (ms) and turns "always valid" from a claim into a guarantee, e.g. against overflow
    # from absurd drifts.
    validate_candles(frame, pair)
    return frame


def _grid(timeframe: str, start: datetime, end: datetime) -> _Grid:
    step = timeframe_to_seconds(timeframe)
    _aware("start", start)
    _aware("end", end)
    _require(start < end, "end", f"after start {start}", end)
    first = ceil_epoch(-(-_micros(start) // 1_000_000), timeframe)
    n = max(0, -(-(_micros(end) - first * 1_000_000) // (step * 1_000_000)))
    _require(n > 0, "end", f"late enough for a {timeframe} candle to open in [start, end)", end)
    _require(n <= _MAX_CANDLES, "end", f"at most {_MAX_CANDLES} {timeframe} candles after start", end)
    return _Grid(step=step, first=first, n=n)


def _check_inputs(
    pairs: Mapping[str, PairProfile], seed: int, grid: _Grid, shocks: Sequence[Shock], regimes: _Regimes
) -> None:
    _count("seed", seed, 0)
    _require(len(pairs) > 0, "pairs", "at least one pair profile", pairs)
    for pair, profile in pairs.items():
        _require(isinstance(pair, str) and pair != "", "pairs keys", "non-empty pair names", pair)
        _require(isinstance(profile, PairProfile), f"pairs[{pair!r}]", "a PairProfile", profile)
    for i, shock in enumerate(shocks):
        inside = 0 <= grid.index_at(shock.at) < grid.n
        _require(inside, f"shocks[{i}].at", "inside the generated candles [start, end)", shock.at)
        unknown = sorted(set(shock.pairs or ()) - set(pairs))
        _require(not unknown, f"shocks[{i}].pairs", "names of generated pairs", tuple(unknown))
    for pair, spans in regimes.items():
        _require(pair in pairs, "regimes keys", "names of generated pairs", pair)
        ordered = sorted(spans, key=lambda s: s.start)
        for j, span in enumerate(ordered):
            field = f"regimes[{pair!r}] span {span.start}..{span.end}"
            holds = grid.index_from(span.start) < grid.index_from(span.end)
            _require(holds, field, "overlapping the generated candles", span.kind)
            _require(j == 0 or span.start >= ordered[j - 1].end, field, "not overlapping others", span.kind)


def generate_market(
    pairs: Mapping[str, PairProfile],
    timeframe: str,
    start: datetime,
    end: datetime,
    seed: int,
    shocks: Sequence[Shock] = (),
    regimes: _Regimes = _NO_REGIMES,
) -> dict[str, pd.DataFrame]:
    """Generate correlated candle frames for ``pairs`` over [start, end) (see the module docstring).

    Candle open times are aligned to ``timeframe`` (the first candle opens at the first aligned time
    at or after ``start``; the last opens before ``end``). Each frame passes
    :func:`~execdesk.data.candles.validate_candles`. ``regimes`` maps a pair to the spans forcing
    its regime (non-overlapping; a span reaching outside the period is clipped to it).

    Raises :class:`InvalidInput` naming the field for: start >= end, naive datetimes, an unknown
    timeframe, a negative seed, a shock or span outside the period, overlapping spans, and
    shocks / regimes naming pairs that are not generated.
    """
    grid = _grid(timeframe, start, end)
    _check_inputs(pairs, seed, grid, shocks, regimes)
    market = _make_market(seed, grid)
    return {
        pair: _make_pair(pair, profile, market, grid, shocks, regimes.get(pair, ())) for pair, profile in pairs.items()
    }


def generate_pair(
    pair: str,
    profile: PairProfile,
    timeframe: str,
    start: datetime,
    end: datetime,
    seed: int,
    shocks: Sequence[Shock] = (),
    regimes: Sequence[RegimeSpan] = (),
) -> pd.DataFrame:
    """Candles of one pair: exactly the frame ``generate_market`` makes for it with the same seed."""
    return generate_market({pair: profile}, timeframe, start, end, seed, shocks, {pair: regimes})[pair]
