"""Tests of execdesk.monitor.equity: equity paths, peaks, drawdowns, breaches, snapshots, watermarks.

The market is a hand-made close matrix of two pairs over five bars:

    row 0 (A): 100  110   99   88  121
    row 1 (B):  10   10   10   10   10

Portfolio: cash 0, long 10 A and 100 B -> equity 10 A + 1,000:
    2,000  2,100  1,990  1,880  2,210
    peak      2,000  2,100  2,100  2,100  2,210
    drawdown  0      0      0.052381  0.104762  0

Deployment "d": base 1,000, long 10 A @ 100 -> equity 1,000 + 10 (A - 100):
    1,000  1,100  990  880  1,210;  drawdown 0, 0, 0.1, 0.2, 0
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from execdesk.domain.events import Event, EventKind, canonical_json
from execdesk.domain.marks import PORTFOLIO, Breach, Holding, Holdings, Limit, Watermarks, fold_marks
from execdesk.monitor.equity import Monitor

CLOSE = np.array([[100.0, 110.0, 99.0, 88.0, 121.0],
                  [10.0, 10.0, 10.0, 10.0, 10.0]])
PORTFOLIO_EQ = [2000.0, 2100.0, 1990.0, 1880.0, 2210.0]
DEP_EQ = [1000.0, 1100.0, 990.0, 880.0, 1210.0]


def holdings() -> Holdings:
    return Holdings(cash=0.0, portfolio=(Holding(0, 10.0, 100.0), Holding(1, 100.0, 10.0)),
                    deployment_base={"d": 1000.0}, deployment_holdings={"d": (Holding(0, 10.0, 100.0),)})


def monitor(mask: list[bool] | None = None) -> Monitor:
    return Monitor(CLOSE, np.array(mask if mask is not None else [True] * 5))


def test_advance_when_no_limits_then_snapshots_carry_the_hand_computed_paths() -> None:
    # Act
    stop, breaches, snaps = monitor().advance(holdings(), 0, 4, [])

    # Assert
    assert stop is None
    assert breaches == []
    assert [s.g for s in snaps] == [0, 1, 2, 3, 4]
    assert [s.equity for s in snaps] == pytest.approx(PORTFOLIO_EQ)
    assert [s.drawdown for s in snaps] == pytest.approx([0.0, 0.0, 1 - 1990 / 2100, 1 - 1880 / 2100, 0.0])
    assert [s.deployments["d"][0] for s in snaps] == pytest.approx(DEP_EQ)
    assert [s.deployments["d"][1] for s in snaps] == pytest.approx([0.0, 0.0, 0.1, 0.2, 0.0])


def test_advance_when_short_holding_then_equity_falls_as_price_rises() -> None:
    # Arrange: cash 3,000 after selling 10 A short at 100 (and 2,000 own); deployment short 10 A @ 100
    h = Holdings(cash=3000.0, portfolio=(Holding(0, -10.0, 100.0),), deployment_base={"d": 1000.0},
                 deployment_holdings={"d": (Holding(0, -10.0, 100.0),)})

    # Act
    _, _, snaps = monitor().advance(h, 0, 4, [])

    # Assert: 3,000 - 10 A = 2,000, 1,900, 2,010, 2,120, 1,790; d: 1,000 - 10 (A - 100)
    assert [s.equity for s in snaps] == pytest.approx([2000.0, 1900.0, 2010.0, 2120.0, 1790.0])
    assert [s.deployments["d"][0] for s in snaps] == pytest.approx([1000.0, 900.0, 1010.0, 1120.0, 790.0])


def test_advance_when_portfolio_limit_reached_then_first_breaching_bar_returned() -> None:
    # Arrange
    m = monitor()
    limit = Limit(PORTFOLIO, "halt", 0.10)

    # Act
    stop, breaches, snaps = m.advance(holdings(), 0, 4, [limit])

    # Assert: 0.104762 >= 0.10 first at bar 3
    assert stop == 3
    assert breaches == [Breach(PORTFOLIO, "halt", 0.10, pytest.approx(1 - 1880 / 2100), 1880.0, 2100.0)]
    assert [s.g for s in snaps] == [0, 1, 2, 3]  # evaluation stops at the breaching bar
    assert m.marks.last_equity[PORTFOLIO] == pytest.approx(1880.0)


def test_advance_when_deployment_limit_reached_earlier_then_stops_there_with_only_that_breach() -> None:
    # Arrange: d reaches 0.1 at bar 2 (limit 0.09); the portfolio (0.052) does not reach 0.10 there
    limits = [Limit(PORTFOLIO, "halt", 0.10), Limit("d", "halt", 0.09)]

    # Act
    stop, breaches, _ = monitor().advance(holdings(), 0, 4, limits)

    # Assert
    assert stop == 2
    assert [(b.scope, b.level) for b in breaches] == [("d", "halt")]
    assert breaches[0].drawdown == pytest.approx(0.1)
    assert (breaches[0].equity, breaches[0].peak) == (pytest.approx(990.0), pytest.approx(1100.0))


def test_advance_when_two_limits_reached_at_the_same_bar_then_both_breaches() -> None:
    # Arrange: at bar 3 the portfolio is at 0.1048 and d at 0.2
    limits = [Limit(PORTFOLIO, "halt", 0.10), Limit("d", "close", 0.15), Limit("d", "halt", 0.095)]

    # Act
    stop, breaches, _ = monitor().advance(holdings(), 0, 4, limits)

    # Assert: d's halt limit (0.095) is reached at bar 2 already (drawdown 0.1)
    assert stop == 2
    assert [(b.scope, b.level) for b in breaches] == [("d", "halt")]

    # Act 2: without d's halt limit, the first bar is 3, where two limits are reached
    stop2, breaches2, _ = monitor().advance(holdings(), 0, 4, limits[:2])

    # Assert 2
    assert stop2 == 3
    assert [(b.scope, b.level) for b in breaches2] == [(PORTFOLIO, "halt"), ("d", "close")]


def test_advance_when_limits_not_reached_then_no_breach_and_whole_stretch_evaluated() -> None:
    # Arrange
    m = monitor()

    # Act: the worst drawdowns are 0.104762 (portfolio) and 0.2 (d)
    stop, breaches, snaps = m.advance(holdings(), 0, 4, [Limit(PORTFOLIO, "halt", 0.11), Limit("d", "x", 0.21)])

    # Assert
    assert stop is None
    assert breaches == []
    assert len(snaps) == 5
    assert m.marks.peak == {PORTFOLIO: pytest.approx(2210.0), "d": pytest.approx(1210.0)}
    assert m.marks.max_drawdown == {PORTFOLIO: pytest.approx(1 - 1880 / 2100), "d": pytest.approx(0.2)}
    assert m.marks.last_equity == {PORTFOLIO: pytest.approx(2210.0), "d": pytest.approx(1210.0)}


def test_advance_when_limit_scope_unknown_then_ignored() -> None:
    # Act
    stop, breaches, _ = monitor().advance(holdings(), 0, 4, [Limit("no-such-deployment", "halt", 0.0)])

    # Assert
    assert stop is None
    assert breaches == []


def test_advance_when_peak_carried_in_watermarks_then_drawdown_measured_from_it() -> None:
    # Arrange: an earlier stretch left a portfolio peak of 2,500
    m = monitor()
    m.marks = Watermarks(peak={PORTFOLIO: 2500.0})

    # Act: bars 1..2 (equity 2,100, 1,990)
    stop, breaches, snaps = m.advance(holdings(), 1, 2, [Limit(PORTFOLIO, "halt", 0.15)])

    # Assert: 1 - 2,100 / 2,500 = 0.16 >= 0.15 at bar 1 already
    assert stop == 1
    assert breaches[0].peak == 2500.0
    assert breaches[0].drawdown == pytest.approx(0.16)
    assert [s.g for s in snaps] == [1]
    assert m.marks.peak[PORTFOLIO] == 2500.0


def test_advance_when_called_on_consecutive_stretches_then_same_as_one_stretch() -> None:
    # Arrange
    whole, split = monitor(), monitor()

    # Act
    whole.advance(holdings(), 0, 4, [])
    split.advance(holdings(), 0, 1, [])
    _, _, snaps = split.advance(holdings(), 2, 4, [])

    # Assert: the second stretch starts from the peak 2,100 of the first
    assert [s.drawdown for s in snaps] == pytest.approx([1 - 1990 / 2100, 1 - 1880 / 2100, 0.0])
    assert split.marks.as_payload() == whole.marks.as_payload()


def test_advance_when_snapshot_mask_sparse_then_snapshots_only_at_mask_positions_evaluated() -> None:
    # Arrange: snapshots wanted at bars 0, 2 and 4
    m = monitor([True, False, True, False, True])

    # Act: a breach at bar 3 ends the stretch before bar 4
    _, _, snaps = m.advance(holdings(), 0, 4, [Limit(PORTFOLIO, "halt", 0.10)])
    _, _, later = m.advance(holdings(), 4, 4, [])

    # Assert
    assert [s.g for s in snaps] == [0, 2]
    assert snaps[1].equity == pytest.approx(1990.0)
    assert [s.g for s in later] == [4]


def test_watermarks_when_round_tripped_through_as_payload_and_fold_then_equal() -> None:
    # Arrange
    m = monitor()
    m.advance(holdings(), 0, 3, [])

    # Act: as a completion event stores it (canonical JSON) and a restart folds it back
    payload = json.loads(canonical_json(m.marks.as_payload()))
    back = Watermarks.fold([payload])

    # Assert: peaks 2,100 / 1,100; worst drawdowns 0.104762 / 0.2; last equity 1,880 / 880
    assert list(payload["peak"]) == ["d", PORTFOLIO]  # sorted by scope
    assert back.as_payload() == m.marks.as_payload()
    assert back.peak == {PORTFOLIO: pytest.approx(2100.0), "d": pytest.approx(1100.0)}
    assert back.max_drawdown == {PORTFOLIO: pytest.approx(1 - 1880 / 2100), "d": pytest.approx(0.2)}
    assert back.last_equity == {PORTFOLIO: pytest.approx(1880.0), "d": pytest.approx(880.0)}


def test_watermarks_when_changes_taken_per_stretch_and_folded_then_peaks_and_drawdowns_resume() -> None:
    # Arrange: three stretches, each followed by a progress payload of what changed
    m = monitor()
    payloads = []
    for a, b in ((0, 1), (2, 3), (4, 4)):
        m.advance(holdings(), a, b, [])
        payloads.append(m.marks.take_changes())

    # Act
    back = Watermarks.fold(payloads)

    # Assert: bar 2-3 changed no peak (2,100 held) but the drawdowns; last_equity is not carried
    assert payloads[1]["peak"] == {}
    assert payloads[1]["max_drawdown"] == {PORTFOLIO: pytest.approx(1 - 1880 / 2100), "d": pytest.approx(0.2)}
    assert back.peak == m.marks.peak
    assert back.max_drawdown == m.marks.max_drawdown
    assert back.last_equity == {}
    assert m.marks.take_changes() == {"peak": {}, "max_drawdown": {}}


def test_monitor_when_marks_replaced_by_folded_ones_then_continues_like_the_uninterrupted_one() -> None:
    # Arrange
    uninterrupted, first = monitor(), monitor()
    uninterrupted.advance(holdings(), 0, 4, [])
    first.advance(holdings(), 0, 2, [])
    restarted = monitor()
    restarted.marks = Watermarks.fold([first.marks.take_changes()])

    # Act
    _, _, snaps = restarted.advance(holdings(), 3, 4, [])

    # Assert: bar 3 is measured from the carried peak 2,100
    assert snaps[0].drawdown == pytest.approx(1 - 1880 / 2100)
    assert restarted.marks.peak == uninterrupted.marks.peak
    assert restarted.marks.max_drawdown == uninterrupted.marks.max_drawdown


def test_watermarks_when_payload_empty_or_partial_then_missing_parts_empty() -> None:
    # Act
    back = Watermarks.fold([{"peak": {PORTFOLIO: 5}}, {}])

    # Assert
    assert back.as_payload() == {"peak": {PORTFOLIO: 5.0}, "max_drawdown": {}, "last_equity": {}}
    assert isinstance(back.peak[PORTFOLIO], float)


def test_breach_evidence_when_called_then_rounded_figures() -> None:
    # Act
    evidence = Breach(PORTFOLIO, "halt", 0.1, 0.10476190476, 1880.0000001, 2100.0).evidence()

    # Assert
    assert evidence == {"scope": PORTFOLIO, "level": "halt", "limit": 0.1, "drawdown": 0.104762, "equity": 1880.0,
                        "peak": 2100.0}


def test_fold_marks_when_progress_and_completion_events_then_later_values_win() -> None:
    # Arrange
    events = [
        Event(1, EventKind.RUN_PROGRESS, {"bar_time": 0, "bars_done": 1,
                                          "marks": {"peak": {PORTFOLIO: 100.0}, "max_drawdown": {PORTFOLIO: 0.0}}}),
        Event(2, EventKind.ALERT_RAISED, {"marks": {"peak": {PORTFOLIO: 999.0}}}),  # not a mark event
        Event(3, EventKind.RUN_PROGRESS, {"bar_time": 1, "bars_done": 2, "marks": {"max_drawdown": {PORTFOLIO: 0.05}}}),
        Event(4, EventKind.RUN_COMPLETED, {"marks": {"peak": {PORTFOLIO: 120.0}}}),
    ]

    # Act
    marks = fold_marks(events)

    # Assert
    assert marks.peak == {PORTFOLIO: 120.0}
    assert marks.max_drawdown == {PORTFOLIO: 0.05}


def test_advance_when_drawdown_equals_the_limit_in_floats_then_it_is_reached() -> None:
    # Arrange: equity 2100 -> 1890 is a drawdown of exactly 10%, computed as 0.09999999999999998
    close = np.array([[210.0, 189.0]])
    h = Holdings(cash=0.0, portfolio=(Holding(0, 10.0, 210.0),), deployment_base={}, deployment_holdings={})
    assert 1.0 - 1890.0 / 2100.0 < 0.10

    # Act
    stop, breaches, _ = Monitor(close, np.array([False, False])).advance(h, 0, 1, [Limit(PORTFOLIO, "halt", 0.10)])

    # Assert
    assert stop == 1
    assert [b.level for b in breaches] == ["halt"]


@pytest.mark.parametrize("seed", range(5))
def test_advance_when_bar_by_bar_then_the_same_snapshots_breach_and_marks_to_the_bit_as_one_stretch(seed: int) -> None:
    """One bar at a time (the loop's eventful bars take the one-bar path) gives what a stretch gives: the same
    snapshots, the same first breach, the same watermarks, exactly."""
    rng = np.random.default_rng(seed)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, (3, 400)), axis=1))
    mask = rng.random(400) < 0.1
    h = Holdings(1000.0, (Holding(0, 5.0, 100.0), Holding(2, -3.0, 100.0)), {"d": 500.0, "e": 700.0},
                 {"d": (Holding(0, 5.0, 100.0),), "e": (Holding(2, -3.0, 100.0),)})
    limits = [Limit(PORTFOLIO, "kill", 0.2), Limit("d", "reduce", 0.25), Limit("x", "alert", 0.0)]
    whole, single = Monitor(close, mask), Monitor(close, mask)
    stop, breaches, snaps = whole.advance(h, 0, 399, limits)
    single_snaps: list[object] = []
    single_stop, single_breaches = None, []
    for g in range(400):
        single_stop, single_breaches, s = single.advance(h, g, g, limits)
        single_snaps += s
        if single_stop is not None:
            break
    assert (single_stop, single_breaches) == (stop, breaches)
    assert single_snaps == snaps
    assert single.marks.as_payload() == whole.marks.as_payload()
    assert single.marks.last_equity == whole.marks.last_equity
