"""The pipeline behind ``execdesk codegen``: :func:`generate` and its :class:`CodegenReport`.

Re-exported by :mod:`execdesk.codegen` (see its docstring for the steps).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from datetime import time as dtime
from pathlib import Path
from typing import Any, Final

import pandas as pd

from execdesk.codegen.render import StakeSizing, render_strategy
from execdesk.codegen.review import CheckResult, ReviewReport
from execdesk.codegen.review import review as review_strategy
from execdesk.codegen.verify import VerificationReport, VerifyConfig
from execdesk.codegen.verify import verify as verify_strategy
from execdesk.errors import InvalidInput, Refused
from execdesk.phases import phase
from execdesk.strategy import StrategyBundle, load_bundle

#: Seed of the candles generated for ``--verify`` without data.
GENERATED_SEED: Final = 7
#: At most this many generated candles per pair (the validation period is cut after them).
MAX_GENERATED_CANDLES: Final = 50_000
#: Generated data covers at least the strategy's startup candles plus this many.
MIN_TRADED_CANDLES: Final = 500
#: Generated candles of a correlation window start this many days before it (a multiple, for longer warm-ups).
WINDOW_WARM_UP_DAYS: Final = 60
# Start prices and daily volumes (base units) of the generated market; other bases get 100 / 500k.
_PROFILES: Final = {
    "BTC": (60_000.0, 1_000.0),
    "ETH": (3_000.0, 20_000.0),
    "SOL": (150.0, 400_000.0),
    "AVAX": (35.0, 1_500_000.0),
    "BNB": (550.0, 100_000.0),
    "XRP": (0.6, 80_000_000.0),
}


@dataclass(frozen=True, slots=True)
class CodegenReport:
    """What :func:`generate` wrote and every check's result.

    ``files`` maps ``strategy``, ``readme``, ``review_json``, ``review_md`` (and
    ``verification_json``, ``verification_md`` when verified) to their paths. ``data_source``
    says where the verification candles came from (None without verification).
    """

    bundle_id: str
    bundle_version: int
    bundle_hash: str
    class_name: str
    out_dir: Path
    files: Mapping[str, Path]
    review: ReviewReport
    verification: VerificationReport | None = None
    data_source: str | None = None
    sizing: StakeSizing | None = field(default=None)

    @property
    def passed(self) -> bool:
        """Whether the review (and the verification, when asked for) passed every check."""
        return self.review.passed and (self.verification is None or self.verification.passed)

    @property
    def failed_checks(self) -> list[str]:
        """Failed checks as ``review.<name>`` / ``verification.<name>``."""
        failed = [f"review.{name}" for name in self.review.failed]
        if self.verification is not None:
            failed += [f"verification.{name}" for name in self.verification.failed]
        return failed

    @property
    def exit_code(self) -> int:
        """0 when everything passed, else :attr:`Refused.exit_code` (3)."""
        return 0 if self.passed else Refused.exit_code

    def as_dict(self) -> dict[str, Any]:
        """JSON-safe form (what ``--json`` prints)."""
        return {
            "bundle": {"id": self.bundle_id, "version": self.bundle_version, "sha256": self.bundle_hash},
            "class_name": self.class_name,
            "out_dir": str(self.out_dir),
            "files": {k: str(v) for k, v in self.files.items()},
            "passed": self.passed,
            "failed_checks": self.failed_checks,
            "sizing": None if self.sizing is None else self.sizing.as_dict(),
            "review": self.review.as_dict(),
            "verification": None if self.verification is None else self.verification.as_dict(),
            "data_source": self.data_source,
        }

    def summary(self) -> str:
        """A few human lines: files, each check, the verdict."""
        lines = [f"{self.class_name} (bundle {self.bundle_id} v{self.bundle_version}) -> {self.files['strategy']}"]
        sections: list[tuple[str, tuple[CheckResult, ...]]] = [("review", self.review.checks)]
        if self.verification is not None:
            sections.append(("verification", self.verification.checks))
            lines.append(f"verification data: {self.data_source}")
        for section, checks in sections:
            for check in checks:
                mark = "ok  " if check.passed else "FAIL"
                lines.append(f"  {mark} {section}.{check.name}: {check.detail.splitlines()[0][:160]}")
        lines.append("PASSED" if self.passed else "REFUSED: failed " + ", ".join(self.failed_checks))
        return "\n".join(lines)


def generate(
    bundle_path: Path | str,
    out_dir: Path | str,
    verify: bool = False,
    data: Path | str | Mapping[str, pd.DataFrame] | None = None,
    *,
    sizing: StakeSizing | None = None,
    config: VerifyConfig | None = None,
) -> CodegenReport:
    """Generate, review and (with ``verify``) prove the Freqtrade strategy of a bundle.

    ``bundle_path``: a bundle file or folder. ``out_dir``: created if needed; existing files of
    the same names are replaced. ``data``: the verification candles — a Freqtrade datadir (read
    with :func:`execdesk.data.load_pair` for the bundle's pairs and timeframe), or a mapping
    pair -> candle frame; None generates them (see :func:`market_for_bundle`). ``sizing``: the
    stake sizing built into ``custom_stake_amount`` (none: Freqtrade's ``stake_amount``).
    ``config``: the verification run's stake, fee, slots and wallet (default :class:`VerifyConfig`,
    with ``stake_amount`` = the fixed stake of a ``fixed`` sizing). The native engine stakes
    ``config.stake_amount`` per trade and does not model ``custom_stake_amount``: with a
    ``wallet_fraction`` or ``risk`` sizing its profits (not its trade dates) can differ.

    Raises :class:`~execdesk.errors.SpecError` for an invalid bundle and
    :class:`~execdesk.errors.InvalidInput` for unusable data; failed checks are not exceptions but
    marked in the report (``report.passed``, ``report.exit_code``).
    """
    bundle = load_bundle(Path(bundle_path))
    out = Path(out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InvalidInput(f"--out {out}: cannot be made a folder ({exc.strerror})") from None
    phase("rendering the strategy from its bundle")
    generated = render_strategy(bundle, sizing)
    strategy_path = out / generated.filename
    strategy_path.write_text(generated.source, encoding="utf-8")
    readme_path = out / "README.md"
    readme_path.write_text(generated.readme, encoding="utf-8")
    phase("reviewing it (compile, AST audit, ruff, Freqtrade's own loader)")
    review = review_strategy(generated, out)
    files: dict[str, Path] = {"strategy": strategy_path, "readme": readme_path, **review.files}
    verification: VerificationReport | None = None
    data_source: str | None = None
    if verify:
        phase("reading the candles to prove it on" if data is not None else "generating candles to prove it on")
        frames, data_source = _verification_data(bundle, data)
        if config is None and sizing is not None and sizing.method == "fixed":
            # The native engine stakes config.stake_amount; a fixed sizing is that same number.
            config = VerifyConfig(stake_amount=sizing.value)
        safe = review.check("compiles").passed and review.check("ast_audit").passed
        if safe:
            # the bundle's figures can only be reproduced on market data given by the user; generated
            # candles are a different market, so only Freqtrade-vs-native parity is checked on them
            phase("proving it: Freqtrade's backtester and the native engine on the same candles")
            verification = verify_strategy(
                bundle, frames, config=config, generated=generated, strategy_file=strategy_path,
                data_source=data_source, compare_validation=data is not None,
            )
        else:
            skipped = CheckResult("verification", False, "not run: the strategy failed compile or the AST audit")
            verification = VerificationReport(
                class_name=generated.class_name,
                bundle_id=bundle.id,
                bundle_version=bundle.version,
                data_source=data_source,
                checks=(skipped,),
            )
        files["verification_json"] = out / "verification.json"
        files["verification_md"] = out / "verification.md"
        files["verification_json"].write_text(json.dumps(verification.as_dict(), indent=2) + "\n", encoding="utf-8")
        files["verification_md"].write_text(verification.to_markdown(), encoding="utf-8")
    return CodegenReport(
        bundle_id=bundle.id,
        bundle_version=bundle.version,
        bundle_hash=bundle.bundle_hash,
        class_name=generated.class_name,
        out_dir=out,
        files=files,
        review=review,
        verification=verification,
        data_source=data_source,
        sizing=sizing,
    )


def market_for_bundle(
    bundle: StrategyBundle, seed: int = GENERATED_SEED, max_candles: int = MAX_GENERATED_CANDLES
) -> tuple[dict[str, pd.DataFrame], str]:
    """Generated candles for the bundle's pairs and timeframe over its validation period, and a
    sentence saying exactly how they were made.

    The period runs from the start day 00:00 UTC to the end of the end day, cut after
    ``max_candles`` candles, and extended when it holds fewer than the strategy's startup candles
    plus :data:`MIN_TRADED_CANDLES`.
    """
    from execdesk.data import PairProfile, generate_market, timeframe_to_seconds

    step = timedelta(seconds=timeframe_to_seconds(bundle.timeframe))
    period = bundle.validation.period
    start = datetime.combine(period.start, dtime(), tzinfo=UTC)
    end = datetime.combine(period.end + timedelta(days=1), dtime(), tzinfo=UTC)
    notes: list[str] = []
    count = int((end - start) / step)
    if count > max_candles:
        end = start + step * max_candles
        notes.append(f"cut to the first {max_candles} candles")
    minimum = bundle.startup_candles + MIN_TRADED_CANDLES
    if count < minimum:
        end = start + step * minimum
        notes.append(f"extended to {minimum} candles (startup {bundle.startup_candles} + {MIN_TRADED_CANDLES})")
    profiles = {}
    for pair in bundle.pairs:
        price, volume = _PROFILES.get(pair.split("/")[0], (100.0, 500_000.0))
        profiles[pair] = PairProfile(start_price=price, base_volume=volume)
    frames = generate_market(profiles, bundle.timeframe, start, end, seed)
    source = (
        f"generated with execdesk.data.generate_market(seed={seed}) for {', '.join(bundle.pairs)} "
        f"{bundle.timeframe} from {start.isoformat()} to {end.isoformat()} (the bundle's validation period"
        + ("; " + "; ".join(notes) if notes else "")
        + "), not market data"
    )
    return frames, source


def _verification_data(
    bundle: StrategyBundle, data: Path | str | Mapping[str, pd.DataFrame] | None
) -> tuple[dict[str, pd.DataFrame], str]:
    if data is None:
        return market_for_bundle(bundle)
    if isinstance(data, Mapping):
        missing = [p for p in bundle.pairs if p not in data]
        if missing:
            raise InvalidInput(f"verification data has no candles for {', '.join(missing)}")
        return {p: data[p] for p in bundle.pairs}, f"candles given by the caller for {', '.join(bundle.pairs)}"
    return market_from_datadir(bundle, Path(data), "verification data")


def market_from_datadir(
    bundle: StrategyBundle, datadir: Path, what: str = "datadir"
) -> tuple[dict[str, pd.DataFrame], str]:
    """Every candle of the bundle's pairs and timeframe in a Freqtrade datadir (read with
    :func:`execdesk.data.load_pair`), and a sentence saying where they came from.

    ``what`` names the data in the error raised when ``datadir`` is not a folder. Raises
    :class:`~execdesk.errors.InvalidInput` naming the folder, or the pair and every path looked for.
    """
    from execdesk.data import load_pair

    if not datadir.is_dir():
        raise InvalidInput(f"{what} {datadir} is not a folder (expected a Freqtrade datadir)")
    frames = {pair: load_pair(datadir, pair, bundle.timeframe) for pair in bundle.pairs}
    return frames, f"Freqtrade datadir {datadir} ({bundle.timeframe} candles of {', '.join(bundle.pairs)})"


def validation_market_from_datadir(
    bundle: StrategyBundle, datadir: Path, what: str = "datadir"
) -> tuple[dict[str, pd.DataFrame], str]:
    """The datadir's candles of the bundle's pairs over its validation period (start day 00:00 UTC
    to the end of the end day), and a sentence saying where they came from.

    Up to ``bundle.startup_candles`` candles before the period are kept as the strategy's warm-up
    (as Freqtrade's backtesting loads them), so its trades can start with the period. Raises
    :class:`~execdesk.errors.InvalidInput` when the folder or a pair's file is missing (see
    :func:`market_from_datadir`) or when a pair's candles do not cover the whole period.
    """
    from execdesk.data import timeframe_to_seconds

    frames, source = market_from_datadir(bundle, datadir, what)
    step = pd.Timedelta(seconds=timeframe_to_seconds(bundle.timeframe))
    period = bundle.validation.period
    start = pd.Timestamp(period.start, tz="UTC")
    end = pd.Timestamp(period.end, tz="UTC") + pd.Timedelta(days=1)
    cut: dict[str, pd.DataFrame] = {}
    for pair, frame in frames.items():
        dates = frame["date"]
        if dates.empty or dates.iloc[0] > start or dates.iloc[-1] < end - step:
            held = f"{dates.iloc[0]:%Y-%m-%d %H:%M} to {dates.iloc[-1]:%Y-%m-%d %H:%M}" if len(dates) else "none"
            raise InvalidInput(
                f"{what} {datadir}: the {bundle.timeframe} candles of {pair} do not cover the validation period "
                f"{period.start}..{period.end} of bundle {bundle.id} (the file holds {held} UTC)"
            )
        first = max(int(dates.searchsorted(start)) - bundle.startup_candles, 0)
        last = int(dates.searchsorted(end))
        cut[pair] = frame.iloc[first:last].reset_index(drop=True)
    source += (f", cut to the validation period {start.isoformat()} to {end.isoformat()}"
               f" (after up to {bundle.startup_candles} warm-up candles)")
    return cut, source


@dataclass(frozen=True, slots=True)
class WindowMarket:
    """Candles of several strategies over one common window of days (:func:`window_market`).

    ``start``/``end``: the window, 00:00 UTC of its first day to 00:00 UTC after its last (each strategy's
    warm-up candles lie before ``start``); ``label``: the candles in a few words (``generated desk candles
    (seed 7)`` or ``datadir PATH``), ``source``: how they were had, in a sentence; ``market_data``: True for a
    datadir's candles (market data), False for generated ones; ``frames``: per bundle, in the order given, its
    candles (pair -> its timeframe's frame, warm-up to ``end``) or why there are none (a sentence).
    """

    start: pd.Timestamp
    end: pd.Timestamp
    label: str
    source: str
    market_data: bool
    frames: tuple[dict[str, pd.DataFrame] | str, ...]

    @property
    def days(self) -> tuple[date, date]:
        """The window's first and last day."""
        return self.start.date(), (self.end - pd.Timedelta(days=1)).date()


def window_market(bundles: Sequence[StrategyBundle], first_day: date, last_day: date, datadir: Path | None = None,
                  seed: int = GENERATED_SEED, max_candles: int = MAX_GENERATED_CANDLES) -> WindowMarket:
    """The candles ``bundles`` are all backtested on over the days ``first_day``..``last_day`` (see
    :class:`WindowMarket`), so that their daily returns fall on the same dates.

    Without ``datadir`` they are generated like :func:`market_for_bundle`'s (the same seed and price profiles)
    for every pair of every bundle at 1h, or at the finest of their timeframes that divides the first bundle's
    when that is finer (or the first bundle's does not divide into hours), and
    resampled to each coarser one: one market, so two bundles trading the same pair see the same prices. The
    generated candles start :data:`WINDOW_WARM_UP_DAYS` (60) days before the window (twice, three times as many
    for a bundle whose startup candles need more), so each bundle trades from the window's first day; when they
    would be more than ``max_candles`` the window keeps its most recent days. A bundle whose timeframe is not a
    whole multiple of that one gets no candles (its entry says why). A pair's candles depend on the window
    alone (the seed, 1h unless a bundle needs finer, the warm-up in whole blocks of 60 days), not on which
    bundles are compared: the same two strategies measure the same correlation whatever else is live.

    With ``datadir`` each bundle reads its own timeframe's candles of its pairs (:func:`execdesk.data.load_pair`)
    over the window, after up to its startup candles before it; a missing file, or no candle in the window,
    gives that bundle no candles (its entry says why): a file covering part of the window gives returns on
    part of its days.

    Raises :class:`~execdesk.errors.InvalidInput` for no bundle, a window ending before it starts, or a
    ``datadir`` that is not a folder.
    """
    from execdesk.data import PairProfile, generate_market, load_pair, resample, timeframe_to_seconds

    if not bundles:
        raise InvalidInput("window market: no strategy to get candles for")
    if last_day < first_day:
        raise InvalidInput(f"window market: the window's last day {last_day} is before its first {first_day}")
    start = pd.Timestamp(first_day, tz="UTC")
    end = pd.Timestamp(last_day, tz="UTC") + pd.Timedelta(days=1)
    window = f"{first_day}..{last_day}"
    if datadir is not None:
        if not datadir.is_dir():
            raise InvalidInput(f"--datadir {datadir} is not a folder (expected a Freqtrade datadir)")
        read: dict[tuple[str, str], pd.DataFrame | str] = {}

        def own(bundle: StrategyBundle) -> dict[str, pd.DataFrame] | str:
            cut: dict[str, pd.DataFrame] = {}
            for pair in bundle.pairs:
                key = (pair, bundle.timeframe)
                if key not in read:
                    try:
                        read[key] = load_pair(datadir, pair, bundle.timeframe)
                    except InvalidInput as exc:
                        read[key] = str(exc).splitlines()[0]
                frame = read[key]
                if isinstance(frame, str):
                    return f"datadir {datadir}: {frame}"
                first, last = int(frame["date"].searchsorted(start)), int(frame["date"].searchsorted(end))
                if first >= last:
                    return f"datadir {datadir}: no {bundle.timeframe} candle of {pair} in the window {window}"
                cut[pair] = frame.iloc[max(first - bundle.startup_candles, 0):last].reset_index(drop=True)
            return cut

        frames = tuple(own(b) for b in bundles)
        source = (f"Freqtrade datadir {datadir}: each strategy's own timeframe and pairs over the window {window}, "
                  "after up to its startup candles before it (market data)")
        return WindowMarket(start, end, f"datadir {datadir}", source, True, frames)

    steps = [timeframe_to_seconds(b.timeframe) for b in bundles]
    # 1h unless the first bundle's timeframe or a finer one of the others needs less: a pair's candles then depend
    # on the window alone, not on which other strategies are compared with it
    base = min(step for step in (*steps, 3600) if steps[0] % step == 0)
    base_tf = "1h" if base == 3600 else bundles[steps.index(base)].timeframe
    usable = [i for i, step in enumerate(steps) if step % base == 0]
    block = WINDOW_WARM_UP_DAYS * 86_400
    warm_up = block * max(1, -(-max(bundles[i].startup_candles * steps[i] for i in usable) // block))
    notes: list[str] = []

    def first_candle(at: pd.Timestamp) -> pd.Timestamp:
        return at - pd.Timedelta(seconds=warm_up)

    if (end - first_candle(start)) / pd.Timedelta(seconds=base) > max_candles:
        start = (end - pd.Timedelta(seconds=base * max_candles - warm_up)).ceil("D")
        if start >= end:
            raise InvalidInput(f"window market: the strategies' warm-up ({warm_up // 86_400} days) leaves no day of "
                               f"the window {window} within {max_candles} generated {base_tf} candles")
        notes.append(f"cut to its last {(end - start).days} days (at most {max_candles} {base_tf} candles)")
    begin = first_candle(start)
    pairs = sorted({p for i in usable for p in bundles[i].pairs})
    profiles = {}
    for pair in pairs:
        price, volume = _PROFILES.get(pair.split("/")[0], (100.0, 500_000.0))
        profiles[pair] = PairProfile(start_price=price, base_volume=volume)
    market = generate_market(profiles, base_tf, begin.to_pydatetime(), end.to_pydatetime(), seed)
    out: list[dict[str, pd.DataFrame] | str] = []
    resampled: set[str] = set()
    for i, bundle in enumerate(bundles):
        if i not in usable:
            out.append(f"its timeframe {bundle.timeframe} is not a whole multiple of {base_tf}, the timeframe of the "
                       "candles generated for the comparison")
        elif bundle.timeframe == base_tf:
            out.append({p: market[p] for p in bundle.pairs})
        else:
            resampled.add(bundle.timeframe)
            out.append({p: resample(market[p], bundle.timeframe, from_tf=base_tf, pair=p) for p in bundle.pairs})
    if resampled:
        notes.append(f"resampled to {', '.join(sorted(resampled, key=timeframe_to_seconds))} for the strategies "
                     "trading those")
    days = f"{start.date()}..{(end - pd.Timedelta(days=1)).date()}"
    source = (f"generated with execdesk.data.generate_market(seed={seed}) for {', '.join(pairs)} {base_tf} from "
              f"{begin.isoformat()} to {end.isoformat()}: the window {days}"
              + (f" (of {window}; " + "; ".join(notes) + ")" if notes and start > pd.Timestamp(first_day, tz="UTC")
                 else f" ({'; '.join(notes)})" if notes else "")
              + " after every strategy's warm-up, not market data")
    return WindowMarket(start, end, f"generated desk candles (seed {seed})", source, False, tuple(out))
