"""Drift against the approved backtest: each rule's known answer, the online statistics by hand, and
simulations of healthy and degrading deployments (seeded, deterministic)."""

from __future__ import annotations

from datetime import date

import numpy as np
import pytest
from scipy import stats

from execdesk.errors import InvalidInput
from execdesk.monitor.drift import (
    METRICS,
    SMALL_BATCH,
    SMALL_ROWS,
    Baseline,
    DriftBook,
    DriftConfig,
    Status,
    Verdict,
    evaluate_drift,
    page_hinkley,
    probabilistic_sharpe_ratio,
    verdict_of,
)
from execdesk.strategy.bundle import ValidationReport

UNIT = [-1.0, 1.0] * 10  # mean 0, std 1: z equals the return


def baseline(**overrides: object) -> Baseline:
    values: dict[str, object] = {"sharpe": 2.0, "max_drawdown": 0.2, "win_rate": 0.6, "avg_trade_duration_min": 300.0,
                                 "slippage_budget_bps": 5.0}
    values.update(overrides)
    return Baseline.create(**values)  # type: ignore[arg-type]


def finding(assessment: object, metric: str) -> object:
    return next(f for f in assessment.findings if f.metric == metric)  # type: ignore[attr-defined]


# ------------------------------------------------------------------------------------------ baseline / config

def test_baseline_from_report_when_report_has_returns_then_moments_are_computed() -> None:
    report = ValidationReport(period={"start": date(2026, 1, 1), "end": date(2026, 6, 1)}, trades=20, sharpe=1.4,
                              max_drawdown=0.12, win_rate=0.5, profit_factor=1.3, avg_trade_duration="7h",
                              slippage_budget_bps=8.0, returns=tuple(UNIT))
    b = Baseline.from_report(report)
    assert (b.sharpe, b.max_drawdown, b.win_rate, b.avg_trade_duration_min, b.slippage_budget_bps) == (
        1.4, 0.12, 0.5, 420.0, 8.0)
    # +-1 ten times each: mean 0, std 1, skew 0, kurtosis (not excess) 1, per-trade Sharpe 0
    assert (b.mean, b.std, b.skew, b.kurtosis, b.trade_sharpe) == pytest.approx((0, 1, 0, 1, 0))
    assert Baseline.from_report(report, returns=[0.01] * 5).has_sample is False  # too few: no sample


def test_drift_config_when_thresholds_inverted_then_invalid_input_names_the_key() -> None:
    with pytest.raises(InvalidInput, match="sharpe_warn"):
        DriftConfig(sharpe_warn=0.5, sharpe_critical=0.3)
    with pytest.raises(InvalidInput, match="psr_warn"):
        DriftConfig(psr_warn=1.5)


# ------------------------------------------------------------------------------------------ threshold rules

def test_drawdown_rule_when_live_passes_the_backtest_then_critical_even_without_trades() -> None:
    b = baseline()
    assert finding(evaluate_drift(b, [], max_drawdown=0.1), "max_drawdown").status is Status.OK
    warn = finding(evaluate_drift(b, [], max_drawdown=0.17), "max_drawdown")  # > 0.8 x 0.2 = 0.16
    assert (warn.status, warn.drift) == (Status.WARN, pytest.approx(-0.15))
    critical = evaluate_drift(b, [], max_drawdown=0.21)
    assert finding(critical, "max_drawdown").status is Status.CRITICAL
    assert finding(critical, "max_drawdown").min_sample_met  # no guard: losses are facts
    assert critical.verdict is Verdict.PAUSE  # critical alone, no return evidence: pause, not stop


def test_slippage_rule_when_mean_above_twice_the_budget_then_warn_once_enough_fills() -> None:
    b = baseline()
    warn = finding(evaluate_drift(b, [], slippage_bps_mean=11.0, fills=25), "slippage_bps")
    assert (warn.status, warn.drift) == (Status.WARN, pytest.approx(11 / 5 - 1))
    few = finding(evaluate_drift(b, [], slippage_bps_mean=11.0, fills=10), "slippage_bps")
    assert (few.status, few.min_sample_met) == (Status.OK, False)
    assert finding(evaluate_drift(b, [], slippage_bps_mean=9.9, fills=25), "slippage_bps").status is Status.OK


def test_win_rate_rule_when_down_40pct_over_40_trades_then_warn_with_the_z_test_p_value() -> None:
    # 14 wins of 40 = 0.35 against 0.6 (no backtest sample, trades unknown: one-proportion test):
    # drift 0.35/0.6 - 1 = -0.4167; z = (0.35 + 0.5/40 - 0.6) / sqrt(0.6 x 0.4 / 40) = -0.2375 / 0.07746 = -3.066
    returns = [0.01] * 14 + [-0.01] * 26
    f = finding(evaluate_drift(baseline(), returns), "win_rate")
    assert f.status is Status.WARN
    assert f.drift == pytest.approx(0.35 / 0.6 - 1)
    assert f.p_value == pytest.approx(stats.norm.cdf(-3.066), rel=1e-3)


def test_win_rate_rule_when_three_losing_trades_then_ok_below_the_minimum_sample() -> None:
    a = evaluate_drift(baseline(returns=UNIT), [-3.0, -3.0, -3.0], [10, 10, 10], max_drawdown=0.0)
    assert all(f.status is Status.OK for f in a.findings)  # nothing alarms on three trades
    assert not finding(a, "win_rate").min_sample_met
    assert a.verdict is Verdict.CONTINUE


def test_duration_rule_when_mean_halves_then_only_a_change_beyond_50pct_warns() -> None:
    # durations 50 / 150 alternating: mean 100 against 300, drift -66.7%, z-test p ~ 0
    returns = [0.01] * 12 + [-0.01] * 8  # win rate 0.6: that rule stays quiet
    f = finding(evaluate_drift(baseline(), returns, [50.0, 150.0] * 10), "avg_trade_duration")
    assert (f.status, f.drift) == (Status.WARN, pytest.approx(100 / 300 - 1))
    # 100 / 200: mean 150, drift exactly -50%: not beyond
    assert finding(evaluate_drift(baseline(), returns, [100.0, 200.0] * 10), "avg_trade_duration").status is Status.OK


def test_sharpe_rule_when_no_sample_then_annualised_figures_compared_and_never_critical() -> None:
    returns = [0.01] * 12 + [-0.01] * 8
    warn = finding(evaluate_drift(baseline(), returns, sharpe=1.5), "sharpe")  # (1.5 - 2) / 2 = -25%
    assert (warn.status, warn.drift, warn.p_value) == (Status.WARN, pytest.approx(-0.25), None)
    half = finding(evaluate_drift(baseline(), returns, sharpe=1.0), "sharpe")  # -50%, but nothing confirms it
    assert half.status is Status.WARN
    assert finding(evaluate_drift(baseline(), returns, sharpe=1.9), "sharpe").status is Status.OK  # -5%
    assert finding(evaluate_drift(baseline(), returns[:10], sharpe=0.1), "sharpe").status is Status.OK  # n < 20


def test_sharpe_rule_when_sample_and_returns_collapse_then_critical_and_verdict_stop_with_drawdown() -> None:
    rng = np.random.default_rng(3)
    bt = 0.003 + 0.01 * rng.standard_normal(400)
    live = -0.004 + 0.01 * rng.standard_normal(200)
    a = evaluate_drift(baseline(returns=bt), live, max_drawdown=0.25)
    sharpe = finding(a, "sharpe")
    assert sharpe.status is Status.CRITICAL
    assert sharpe.backtest == pytest.approx(bt.mean() / bt.std())
    assert sharpe.live == pytest.approx(live.mean() / live.std())
    assert a.verdict is Verdict.STOP  # drawdown past the line and the edge gone


def test_verdict_of_when_statuses_given_then_the_documented_mapping() -> None:
    k = len(METRICS)
    rows = np.zeros((5, k), np.int8)
    rows[1, METRICS.index("ks")] = 1  # a warning: review
    rows[2, METRICS.index("slippage_bps")] = 2  # one critical: pause
    rows[3, METRICS.index("max_drawdown")] = 2  # drawdown alone: pause
    rows[4, [METRICS.index("max_drawdown"), METRICS.index("page_hinkley")]] = 2  # both: stop
    assert verdict_of(rows).tolist() == [0, 1, 2, 2, 3]


# ------------------------------------------------------------------------------------------ online statistics

def test_probabilistic_sharpe_ratio_when_hand_example_then_matches() -> None:
    # SR 0.1 vs 0 over 101 returns, normal (skew 0, kurtosis 3): V = (1 + 2/4 x 0.01) / 100 = 0.01005,
    # score 0.1 / 0.100250 = 0.99751, PSR = Phi(0.99751) = 0.84074
    assert probabilistic_sharpe_ratio(0.1, 0.0, 101, 0.0, 3.0) == pytest.approx(0.84074, abs=1e-5)
    # skew -1, kurtosis 6: V = (1 + 0.1 + 5/4 x 0.01) / 100 = 0.011125, score 0.1 / 0.105475 = 0.94809 -> 0.82846
    assert probabilistic_sharpe_ratio(0.1, 0.0, 101, -1.0, 6.0) == pytest.approx(0.82846, abs=1e-5)
    # with the benchmark's own variance 0.01005 added: score 0.1 / sqrt(0.0201) = 0.70535 -> 0.75971
    assert probabilistic_sharpe_ratio(0.1, 0.0, 101, 0.0, 3.0, 0.01005) == pytest.approx(0.75971, abs=1e-5)


def test_page_hinkley_when_hand_sequence_then_warns_at_trade_10_and_is_critical_at_trade_13() -> None:
    # z = 0, 0, then -2 each: z + 0.5 = 0.5, 0.5, -1.5, ...; m = 0.5, 1, -0.5, -2, ...; M stays 1;
    # PH = 0, 0, 1.5, 3, 4.5, 6, 7.5, 9, 10.5 (trade 9 > 10, but the guard is 10 trades), 12 (trade 10: warn),
    # ..., 15 (trade 12: not > 15), 16.5 (trade 13: critical)
    z = [0.0, 0.0] + [-2.0] * 12
    assert page_hinkley(z)[:9].tolist() == pytest.approx([0, 0, 1.5, 3, 4.5, 6, 7.5, 9, 10.5])
    book = DriftBook(["d"], [baseline(returns=UNIT)])
    book.add_trades([0] * 5, z[:5])  # in two cycles: the running sums carry over
    book.add_trades([0] * 9, z[5:])
    assert (int(book.ph_warn_at[0]), int(book.ph_critical_at[0])) == (10, 13)
    f = finding(book.evaluate()[0], "page_hinkley")
    assert (f.status, f.drift) == (Status.CRITICAL, pytest.approx(18.0))


def test_page_hinkley_when_one_crash_trade_then_clipping_keeps_it_quiet() -> None:
    # a -50 sd trade counts as -4: PH 4.5 after it, far from 10
    book = DriftBook(["d"], [baseline(returns=UNIT)])
    book.add_trades([0] * 20, [0.0] * 19 + [-50.0])
    assert finding(book.evaluate()[0], "page_hinkley").status is Status.OK


def test_ks_when_same_distribution_then_quiet_and_when_shifted_then_warns_with_scipys_statistic() -> None:
    rng = np.random.default_rng(11)
    bt = rng.normal(0.0, 0.01, 400)
    same = rng.normal(0.0, 0.01, 300)
    shifted = rng.normal(0.006, 0.01, 300)
    for live, status in ((same, Status.OK), (shifted, Status.WARN)):
        f = finding(evaluate_drift(baseline(returns=bt), live), "ks")
        reference = stats.ks_2samp(live, bt, method="asymp")
        assert f.live == pytest.approx(reference.statistic, abs=1e-12)
        # asymptotic Kolmogorov (kstwobign) against scipy's kstwo: close in the body, both ~0 in the tail
        assert f.p_value == pytest.approx(reference.pvalue, rel=0.1, abs=1e-9)
        assert f.status is status


def test_ks_when_samples_have_ties_then_the_statistic_equals_scipys() -> None:
    rng = np.random.default_rng(5)
    bt = rng.choice([-0.02, -0.01, 0.0, 0.01, 0.03], 200)  # ROI and stop-loss exits repeat exact returns
    live = rng.choice([-0.02, 0.0, 0.01, 0.015, 0.03], 120)
    book = DriftBook(["d"], [baseline(returns=bt)])
    book.add_trades([0] * 120, live)
    assert book.evaluate_arrays()["live"][0, METRICS.index("ks")] == pytest.approx(stats.ks_2samp(live, bt).statistic)


def test_drift_book_when_fed_in_pieces_then_equals_fed_at_once() -> None:
    rng = np.random.default_rng(2)
    bases = [baseline(returns=rng.normal(0.001, 0.01, 100)) for _ in range(3)]
    rows = rng.integers(0, 3, 300)
    r, d = rng.normal(0, 0.01, 300), rng.exponential(300, 300)
    whole, pieces = DriftBook(["a", "b", "c"], bases), DriftBook(["a", "b", "c"], bases)
    whole.add_trades(rows, r, d)
    for cut in np.array_split(np.arange(300), 7):
        pieces.add_trades(rows[cut], r[cut], d[cut])
    a, b = whole.evaluate_arrays(), pieces.evaluate_arrays()
    for key in ("status", "live", "drift", "p_value", "ph_warn_at", "ph_critical_at"):
        np.testing.assert_allclose(a[key], b[key], rtol=1e-9, equal_nan=True)


_STATE = ("sums", "wins", "dur_n", "dur_sum", "dur_sq", "ph_m", "ph_max", "ph_warn_at", "ph_critical_at", "n",
          "ks_counts")


@pytest.mark.parametrize("seed", range(12))
def test_drift_book_when_few_trades_at_a_time_then_the_same_state_to_the_bit_as_the_vectorised_path(seed: int) -> None:
    """Batches of up to SMALL_BATCH trades take the plain-float path; the same trades through the vectorised path
    (one batch over SMALL_BATCH) leave every running array equal, exactly: equal floats, not close ones."""
    rng = np.random.default_rng(seed)
    k = 4
    bases = [baseline(returns=np.round(rng.normal(0.001, 0.01, 60), 4)) for _ in range(k)]  # ties: KS cells hit
    small, vector = DriftBook(list("abcd"), bases), DriftBook(list("abcd"), bases)
    for _ in range(30):
        size = int(rng.integers(1, SMALL_BATCH + 1))
        rows = rng.integers(0, k, size)
        r = np.where(rng.random(size) < 0.3, rng.choice(bases[0].returns, size), rng.normal(0.0, 0.03, size))
        d = rng.exponential(300, size)
        d[rng.random(size) < 0.1] = np.nan  # a trade without its duration
        small.add_trades(rows, r, d)
        _vectorised(vector, rows, r, d)
        for name in _STATE:
            assert np.array_equal(getattr(small, name), getattr(vector, name)), name
    a, b = small.evaluate_arrays(), vector.evaluate_arrays()
    for key in ("status", "live", "drift", "p_value", "ph_warn_at", "ph_critical_at"):
        assert np.array_equal(a[key], b[key], equal_nan=True), key


_ANSWER = ("status", "verdict", "backtest", "live", "drift", "p_value", "min_sample_met", "n", "ph_warn_at",
           "ph_critical_at")


def _books(seed: int) -> DriftBook:
    """A book of 8 deployments in every state the rules distinguish: no trades, a few, many; with and without a
    backtest sample; identical returns (no variance); durations missing; no fills; a baseline of zero figures."""
    rng = np.random.default_rng(seed)
    bases = [baseline(returns=rng.normal(0.001, 0.01, 80)), baseline(), baseline(returns=rng.normal(0, 0.02, 40)),
             baseline(returns=np.round(rng.normal(0.002, 0.01, 120), 3), win_rate=0.0),
             baseline(sharpe=0.0, max_drawdown=0.0, avg_trade_duration_min=0.0, slippage_budget_bps=0.0),
             baseline(returns=rng.normal(-0.001, 0.01, 50)), baseline(returns=rng.normal(0.001, 0.01, 30)),
             baseline(returns=rng.normal(0.003, 0.02, 200), win_rate=1.0)]
    book = DriftBook([f"d{i}" for i in range(8)], bases, DriftConfig(psr_benchmark_error=bool(seed % 2)))
    counts = [0, 1, 3, 25, 40, 60, 200, 35]
    for row, count in enumerate(counts):
        if not count:
            continue
        r = np.full(count, 0.004) if row == 2 else rng.normal(0.0005 * (row - 4), 0.015, count)
        d = rng.exponential(240, count) if row != 3 else np.full(count, np.nan)
        _vectorised(book, np.full(count, row), r, d)
    book.observe(np.arange(8), max_drawdown=rng.choice([np.nan, 0.0, 0.05, 0.5], 8),
                 slippage_bps_mean=rng.choice([np.nan, 0.0, 2.0, 40.0], 8), fills=rng.choice([0, 5, 100], 8),
                 sharpe=rng.choice([np.nan, -1.0, 0.5, 3.0], 8))
    return book


@pytest.mark.parametrize("seed", range(8))
def test_evaluate_when_a_few_rows_then_the_same_answer_to_the_bit_as_the_vectorised_path(seed: int) -> None:
    import execdesk.monitor.drift as drift

    for k in range(25):
        _same_answers(drift, _books(seed * 25 + k), np.random.default_rng(seed * 25 + k).permutation(8))


def _same_answers(drift: object, book: DriftBook, rows: np.ndarray) -> None:
    for cut in (rows[:1], rows[:3], rows[:SMALL_ROWS]):
        few = book.evaluate_arrays(cut)
        before, drift.SMALL_ROWS = drift.SMALL_ROWS, -1  # type: ignore[attr-defined]
        try:
            whole = book.evaluate_arrays(cut)
        finally:
            drift.SMALL_ROWS = before  # type: ignore[attr-defined]
        for key in _ANSWER:
            assert few[key].dtype == whole[key].dtype, key
            assert np.array_equal(few[key], whole[key], equal_nan=True), (key, few[key], whole[key])


def _vectorised(book: DriftBook, rows: np.ndarray, r: np.ndarray, d: np.ndarray) -> None:
    """``book.add_trades`` forced through its vectorised path."""
    import execdesk.monitor.drift as drift

    before, drift.SMALL_BATCH = drift.SMALL_BATCH, 0
    try:
        book.add_trades(rows, r, d)
    finally:
        drift.SMALL_BATCH = before


# ------------------------------------------------------------------------------------------ simulations

def _simulate(seed: int, deployments: int, shift_sd: float) -> tuple[DriftBook, np.ndarray, np.ndarray]:
    """Backtests of 500 Student-t (df 5) trade returns; live streams of 1,000 from the same population
    (shifted by ``shift_sd`` backtest sds from trade 51 on), every rule evaluated after every trade.
    Returns the book, each rule's worst status per deployment, and the trade of the first critical."""
    rng = np.random.default_rng(seed)
    draw = lambda size: 0.002 + 0.012 * rng.standard_t(5, size)  # noqa: E731
    bases = []
    for _ in range(deployments):
        bt = draw(500)
        bases.append(baseline(win_rate=float((bt > 0).mean()), returns=bt))
    book = DriftBook([f"d{i}" for i in range(deployments)], bases)
    live = draw((deployments, 1000))
    live[:, 50:] -= shift_sd * np.array([b.std for b in bases])[:, None]
    durations = rng.exponential(300, (deployments, 1000))
    worst = np.zeros((deployments, len(METRICS)), np.int8)
    first_critical = np.full(deployments, -1)
    rows = np.arange(deployments)
    for t in range(1000):
        book.add_trades(rows, live[:, t], durations[:, t])
        status = book.evaluate_arrays()["status"]
        worst = np.maximum(worst, status)
        first_critical[(first_critical < 0) & (status.max(axis=1) == 2)] = t + 1
    return book, worst, first_critical


def test_simulation_when_live_trades_come_from_the_backtests_distribution_then_no_critical() -> None:
    """400 healthy deployments x 1,000 trades, evaluated after every trade (seeds 1 and 2).

    Measured: 0 of 400 ever critical (nor in 400 more with seed 7); 11.75% ever warned at some point
    along the 1,000 looks (by Sharpe/PSR 7.0%, win rate 5.5%, KS 1.25%, Page-Hinkley 0.75%, duration
    0.75%). With the paper's PSR < 0.05 as the warning level, 31% warned (seed 7 run).
    """
    worst = np.vstack([_simulate(seed, 200, 0.0)[1] for seed in (1, 2)])
    assert (worst == 2).sum() == 0
    ever_warned = float((worst.max(axis=1) >= 1).mean())
    assert ever_warned <= 0.25
    assert float((worst[:, METRICS.index("page_hinkley")] >= 1).mean()) <= 0.05


def test_simulation_when_mean_falls_one_sd_after_trade_50_then_caught_within_bounded_trades() -> None:
    """200 deployments, mean down 1 backtest sd from trade 51: every one goes critical. Measured delay
    from the change to the first critical: median 27 trades (p90 41, min 11, max 69), nearly always by
    Page-Hinkley (its first critical at a median trade 77.5, its first warning at 68)."""
    book, _, first_critical = _simulate(3, 200, 1.0)
    assert (first_critical > 50).all()  # nothing before the change
    delay = first_critical - 50
    assert np.median(delay) <= 35
    assert delay.max() <= 100
    assert np.median(book.ph_warn_at - 50) <= 25


def test_finding_message_when_a_rule_fires_then_it_names_what_it_measures_and_psr_its_probability() -> None:
    from execdesk.monitor.drift import Finding, Status, finding_message

    rule = "r"
    sharpe = Finding("sharpe", 0.207, -0.9765, -5.7, Status.WARN, rule, True, 0.0088, 21)
    psr = Finding("psr", 0.207, -0.9765, -1.18, Status.WARN, rule, True, 0.0088, 21)
    drawdown = Finding("max_drawdown", 0.482, 0.334, -0.308, Status.WARN, rule, True, None, 73)

    assert finding_message("D", sharpe) == "D: Sharpe per trade -0.977 vs backtest 0.207 (r)"
    assert finding_message("D", psr) == ("D: PSR 0.0088, the probability its Sharpe per trade beats the backtest's "
                                         "0.207 (r)")
    assert finding_message("D", drawdown) == ("D: drawdown of the compounded trade returns 33.4% vs backtest 48.2% "
                                              "(r)")
