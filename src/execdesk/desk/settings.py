"""The desk config: what ``execdesk run DESK_CONFIG`` runs. Validated up front, every key typed.

```yaml
desk:    {name: demo, capital: 100000, quote: USDT, seed: 42}
venue:   {kind: paper, fee_bps: 10, slippage_bps: 5}
market:                      # generated (default) or a Freqtrade datadir
  source: generated
  timeframe: 1h              # the base timeframe; strategies may use whole multiples of it
  start: 2024-07-01
  end: 2024-10-01            # exclusive; extending it and running again carries the desk on
  pairs: {BTC/USDT: {start_price: 60000, annual_vol: 0.6, base_volume: 20000}}
  regimes: {SOL/USDT: [{start: 2024-07-15, end: 2024-09-01, kind: trend_down}]}
  shocks: [{at: 2024-09-20T14:00:00Z, move: -0.3, bars: 2}]
clock: replay                # replay (full speed) or wall (bars as they close in real time)
risk: {...}                  # execdesk.risk.config.RiskConfig (limits, drawdown ladders, staging)
monitor: {snapshot_every: 1d}
strategies:
  - {bundle: bundles/trend_ema_cross.yaml, allocation: 0.3}
  - {bundle: bundles/breakout_4h.yaml, allocation: 0.2, drawdown: {reduce: 0.08, kill: 0.12}}
  - {bundle: bundles/mean_revert_bbands.yaml, allocation: 0.1, sizing: {method: kelly, fraction: 0.5}}
```

Relative paths are relative to the config file. Pairs that strategies trade but ``market.pairs``
does not describe get a default profile.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    ValidationError,
    field_validator,
    model_serializer,
    model_validator,
)

from execdesk.data.generator import PairProfile, RegimeSpan, Shock
from execdesk.data.timeframes import TIMEFRAMES, timeframe_to_seconds
from execdesk.domain.state import DeskState
from execdesk.errors import FieldIssue, InvalidInput, SpecError
from execdesk.lead.deploy import DeskFacts, VenueTarget
from execdesk.lead.liaison import LiaisonConfig
from execdesk.monitor.alerts import AlertsConfig, JsonlSinkConfig
from execdesk.risk.config import DrawdownLadder, RiskConfig
from execdesk.strategy._documents import read_document
from execdesk.strategy._issues import issues_from_validation_error
from execdesk.strategy.bundle import Sizing

_STRICT = ConfigDict(extra="forbid", frozen=True)


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _known_timeframe(value: str) -> str:
    if value not in TIMEFRAMES:
        raise ValueError(f"one of {', '.join(TIMEFRAMES)}")
    return value


class DeskSection(BaseModel):
    model_config = _STRICT
    name: str = Field("desk", pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
    capital: float = Field(100_000.0, gt=0, le=1e12)
    quote: str = Field("USDT", pattern=r"^[A-Z0-9]{2,12}$")
    seed: int = Field(42, ge=0, le=2**63 - 1)


class VenueSection(BaseModel):
    """The venue the desk trades on (see :class:`execdesk.venues.paper.PaperVenueConfig` for the paper
    venue's model). ``persist``: the paper venue keeps its own book in the home
    (``paper-venue.sqlite``) and the desk reconciles against it at every start, as with a real venue;
    off, it lives in the desk's process and is rebuilt from the ledger (the fast replay mode).

    ``kind: ccxt`` trades an exchange through ccxt (:class:`execdesk.venues.ccxt_venue.CcxtVenue`):
    ``exchange`` (a ccxt id), its testnet unless ``sandbox: false`` with ``live: true`` (real money), keys only
    from ``EXECDESK_<EXCHANGE>_API_KEY`` / ``_SECRET``; ``api_url`` replaces the exchange's REST host (a proxy,
    or a loopback exchange for tests). Such a desk runs live: ``market.source: exchange`` (the exchange's
    candles) and ``clock: wall``; ``fee_bps`` is what its lanes count in profits."""

    model_config = _STRICT
    kind: Literal["paper", "ccxt"] = "paper"
    exchange: str | None = Field(None, pattern=r"^[a-z][a-z0-9_]*$")
    sandbox: bool = True
    live: bool = False
    api_url: str | None = Field(None, pattern=r"^https?://[^\s/]+$")
    timeout_ms: int = Field(10_000, ge=100, le=120_000)
    fee_bps: float = Field(10.0, ge=0, le=1000)
    slippage_bps: float = Field(5.0, ge=0, le=1000)
    maker_fee_bps: float | None = Field(None, ge=0, le=1000)
    impact_bps: float = Field(20.0, ge=0, le=1000)
    max_volume_share: float | None = Field(0.25, gt=0, le=1)
    latency_ms: int = Field(0, ge=0, le=600_000)
    latency_jitter_ms: int = Field(0, ge=0, le=600_000)
    limit_ttl_s: int | None = Field(None, gt=0)
    min_notional: float = Field(0.0, ge=0)
    qty_step: float | None = Field(None, gt=0)
    persist: bool = False


class PairSection(BaseModel):
    """A generated pair's profile (see :class:`execdesk.data.generator.PairProfile`)."""

    model_config = _STRICT
    start_price: float = Field(100.0, gt=0)
    annual_vol: float = Field(0.8, gt=0, le=10)
    beta: float = Field(1.0, ge=-5, le=5)
    drift: float = Field(0.0, ge=-20, le=20)
    base_volume: float = Field(1_000_000.0, gt=0)
    jumps_per_year: float = Field(6.0, ge=0, le=1000)
    jump_size: float = Field(0.03, ge=0, le=1)
    tail_df: float = Field(4.0, gt=2, le=1000)

    def profile(self) -> PairProfile:
        return PairProfile(**self.model_dump())


class RegimeSection(BaseModel):
    model_config = _STRICT
    start: datetime
    end: datetime
    kind: Literal["trend_up", "trend_down", "range", "chop"]
    strength: float = Field(1.0, gt=0, le=20)

    _utc = field_validator("start", "end")(_utc)


class ShockSection(BaseModel):
    model_config = _STRICT
    at: datetime
    move: float = Field(gt=-1, le=10)
    bars: int = Field(3, ge=1, le=10_000)
    pairs: list[str] | None = None
    vol_multiplier: float = Field(3.0, ge=1, le=100)
    decay_bars: int = Field(48, ge=0, le=100_000)

    _utc = field_validator("at")(_utc)


class MarketSection(BaseModel):
    model_config = _STRICT
    source: Literal["generated", "datadir", "exchange"] = "generated"
    timeframe: str = "1h"
    start: datetime
    end: datetime
    datadir: Path | None = None
    pairs: dict[str, PairSection] = Field(default_factory=dict)
    regimes: dict[str, list[RegimeSection]] = Field(default_factory=dict)
    shocks: list[ShockSection] = Field(default_factory=list)

    _utc = field_validator("start", "end")(_utc)

    _timeframe = field_validator("timeframe")(_known_timeframe)

    @model_validator(mode="after")
    def _period_and_source(self) -> MarketSection:
        if self.start >= self.end:
            raise ValueError(f"market.end ({self.end}) must be after market.start ({self.start})")
        if self.source == "datadir" and self.datadir is None:
            raise ValueError("market.source is datadir: market.datadir must name the folder")
        return self

    def shock_list(self) -> list[Shock]:
        return [Shock(s.at, s.move, s.bars, tuple(s.pairs) if s.pairs else None, s.vol_multiplier, s.decay_bars)
                for s in self.shocks]

    def regime_spans(self) -> dict[str, list[RegimeSpan]]:
        return {p: [RegimeSpan(r.start, r.end, r.kind, r.strength) for r in spans] for p, spans in self.regimes.items()}


class MonitorSection(BaseModel):
    """``snapshot_every``: how often equity is snapshot (a timeframe); ``cycle_budget``: the share of a bar one
    monitoring cycle may take before the monitor is flagged as saturated (a capacity flag to HR)."""

    model_config = _STRICT
    snapshot_every: str = "1d"
    cycle_budget: float = Field(0.05, gt=0, le=1.0)

    _timeframe = field_validator("snapshot_every")(_known_timeframe)

    @property
    def snapshot_seconds(self) -> int:
        return timeframe_to_seconds(self.snapshot_every)


Verdict = Literal["review", "pause", "stop"]
Decision = Literal["continue", "adjust", "pause", "remove"]


def _default_drift_policy() -> dict[Verdict, Decision]:
    return {"review": "adjust", "pause": "pause", "stop": "remove"}


class LeadSection(BaseModel):
    """The lead's stated policies. ``drift_policy``: the monitor's verdict -> the lead's decision in the
    strategy-halt protocol (default review -> adjust, pause -> pause, stop -> remove); decisions are
    continue / adjust (allocation in use halved) / pause (no new positions) / remove (close, HALTED).
    ``approve_all``: the approval gate of ``execdesk deploy`` asks a human for every venue, not only for one
    trading real money (the strategies of the desk config are the human's own list and need none).
    ``human_authorizes``: ladder steps (``reduce``, ``trim``; CRITICAL, below EMERGENCY) the lead does not
    authorize itself: reaching one sends the Orchestrator an emergency decision request and the step's action
    waits for ``execdesk approve|deny``. The kill step (EMERGENCY) is always authorized by policy at once."""

    model_config = _STRICT
    drift_policy: dict[Verdict, Decision] = Field(default_factory=_default_drift_policy)
    #: every deployment by ``execdesk deploy`` waits for a human's ``execdesk approve`` (not only real money)
    approve_all: bool = False
    #: drawdown ladder steps below EMERGENCY that wait for a human's authorization instead of the policy's
    human_authorizes: list[Literal["reduce", "trim"]] = Field(default_factory=list)


class StrategyEntry(BaseModel):
    """One deployment: its bundle, its share of the desk's capital, and optionally its own drawdown ladder
    (default: ``risk.deployment_drawdown``) and its own sizing (the bundle's ``sizing`` schema; default: the
    bundle's, else fixed fractional at ``risk.risk_per_trade``)."""

    model_config = _STRICT
    bundle: Path
    allocation: float = Field(gt=0, le=1)
    drawdown: DrawdownLadder | None = None
    sizing: Sizing | None = None
    # a gate refusing it: ``stop`` the run (exit 3), or ``skip`` it (the refusal recorded, a WARNING, the desk runs
    # without it; its allocation stays unused)
    if_refused: Literal["stop", "skip"] = "stop"

    @model_serializer(mode="wrap")
    def _without_unset_sizing(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        # an entry without a sizing of its own (or the default if_refused) is recorded as before there was one
        # (desk.configured, the identity)
        data: dict[str, Any] = handler(self)
        if data.get("sizing") is None:
            data.pop("sizing", None)
        if data.get("if_refused") == "stop":
            data.pop("if_refused", None)
        return data


class DeskConfig(BaseModel):
    """The whole desk (see the module docstring for the file layout)."""

    model_config = _STRICT
    desk: DeskSection = Field(default_factory=DeskSection)
    venue: VenueSection = Field(default_factory=VenueSection)
    market: MarketSection
    clock: Literal["replay", "wall"] = "replay"
    risk: RiskConfig = Field(default_factory=RiskConfig)
    monitor: MonitorSection = Field(default_factory=MonitorSection)
    alerts: AlertsConfig = Field(default_factory=AlertsConfig)
    liaison: LiaisonConfig = Field(default_factory=LiaisonConfig)
    lead: LeadSection = Field(default_factory=LeadSection)
    strategies: list[StrategyEntry] = Field(min_length=1)

    @model_validator(mode="after")
    def _venue_and_market(self) -> DeskConfig:
        v, m = self.venue, self.market
        if v.kind == "ccxt":
            if not v.exchange:
                raise ValueError("venue.kind is ccxt: venue.exchange must name the ccxt exchange id")
            if m.source != "exchange" or self.clock != "wall":
                raise ValueError("venue.kind is ccxt: the desk trades the exchange live — market.source must be "
                                 "exchange and clock wall (history is only the strategies' warm-up)")
        elif m.source == "exchange":
            raise ValueError("market.source is exchange: venue.kind must be ccxt (the exchange the candles come from)")
        return self

    @model_validator(mode="after")
    def _allocations(self) -> DeskConfig:
        total = sum(s.allocation for s in self.strategies)
        if total > 1.0 + 1e-9:
            raise ValueError(f"strategies' allocations sum to {total:.4g}; they must not exceed 1")
        return self

    def canonical(self) -> dict[str, Any]:
        """JSON-safe form, as recorded in the ledger (``desk.configured``)."""
        return json.loads(self.model_dump_json())

    def identity(self) -> dict[str, Any]:
        """What must not change between runs on one home (everything but the end of the period)."""
        data = self.canonical()
        data["market"].pop("end", None)
        data.pop("alerts", None)  # where alerts and messages go is operations, not the desk: it may change
        data.pop("liaison", None)
        return data


def load_desk_config(path: Path, seed: int | None = None) -> DeskConfig:
    """Read and validate a desk config file; bundle, datadir and alert-file paths become absolute."""
    raw = read_document(path)
    if not isinstance(raw, dict):
        raise SpecError(str(path), [FieldIssue("<root>", type(raw).__name__, "a mapping of config sections")])
    try:
        config = DeskConfig.model_validate(raw)
    except ValidationError as exc:
        raise SpecError(str(path), issues_from_validation_error(exc, DeskConfig)) from None
    base = path.parent.resolve()
    strategies = [s.model_copy(update={"bundle": (base / s.bundle).resolve()}) for s in config.strategies]
    sinks = tuple(sc.model_copy(update={"path": (base / sc.path).resolve()})
                  if isinstance(sc, JsonlSinkConfig) and not Path(sc.path).is_absolute() else sc
                  for sc in config.alerts.sinks)
    alerts = config.alerts.model_copy(update={"sinks": sinks})
    market = config.market
    if market.datadir is not None:
        market = market.model_copy(update={"datadir": (base / market.datadir).resolve()})
    desk = config.desk if seed is None else config.desk.model_copy(update={"seed": seed})
    if seed is not None and seed < 0:
        raise InvalidInput(f"--seed: got {seed}; expected a non-negative integer")
    return config.model_copy(update={"strategies": strategies, "market": market, "desk": desk, "alerts": alerts})


@dataclass(frozen=True, slots=True)
class RecordedDesk:
    """The desk config a ledger recorded (``desk.configured``), read back once with today's model: every
    section typed, a section an older or partial record lacks at its defaults (its market None when it does
    not validate). What the commands on a stopped desk and the gates read, instead of the recorded dicts."""

    capital: float | None
    risk: RiskConfig
    lead: LeadSection
    venue: VenueSection
    market: MarketSection | None
    #: where its messages are posted (the environment variables naming the webhooks; a commands' liaison)
    liaison: LiaisonConfig = field(default_factory=LiaisonConfig)

    @classmethod
    def of(cls, state: DeskState) -> RecordedDesk:
        recorded = (state.config or {}).get("config") or {}

        def section(name: str) -> dict[str, Any]:
            value = recorded.get(name)
            return dict(value) if isinstance(value, dict) else {}

        try:
            market: MarketSection | None = MarketSection.model_validate(section("market"))
        except ValidationError:
            market = None
        try:
            liaison = LiaisonConfig.model_validate(section("liaison"))
        except ValidationError:  # (an older record this version does not read: no webhooks)
            liaison = LiaisonConfig()
        capital = section("desk").get("capital")
        return cls(float(capital) if capital is not None else None, RiskConfig.model_validate(section("risk")),
                   LeadSection.model_validate(section("lead")), VenueSection.model_validate(section("venue")),
                   market, liaison)

    def venue_target(self) -> VenueTarget:
        """The venue the desk's loop trades."""
        v = self.venue
        return VenueTarget("ccxt", v.exchange, v.live) if v.kind == "ccxt" else VenueTarget("paper")

    def market_pairs(self, state: DeskState) -> set[str]:
        """The pairs the desk's market has candles for: its ``market.pairs`` and every deployment's."""
        configured = set(self.market.pairs) if self.market is not None else set()
        return configured | {p for d in state.deployments.values() for p in d.pairs}

    def facts(self, state: DeskState, market_pairs: set[str] | None = None) -> DeskFacts:
        """What the deploy gate checks (``market_pairs``: the running market's, default the recorded ones)."""
        return DeskFacts(self.venue_target(), self.market.timeframe if self.market is not None else None,
                         self.market_pairs(state) if market_pairs is None else market_pairs,
                         self.risk.max_position_fraction)

    def time(self, state: DeskState) -> int:
        """The desk's time for a command on a stopped desk: the close of its last bar (the time of the run's last
        events), or its market's start before any bar."""
        if state.last_bar_time is not None:
            timeframe = self.market.timeframe if self.market is not None else "1h"
            return state.last_bar_time + timeframe_to_seconds(timeframe)
        return int(self.market.start.timestamp()) if self.market is not None else 0
