"""Equity and drawdown, portfolio-wide and per deployment, marked to market on every bar.

Between two bars at which anything trades, holdings are constant, so the monitor evaluates a whole
stretch of bars at once with numpy: equity paths, running peaks, drawdowns, and the first bar (if
any) at which a drawdown reaches an armed limit. It only observes: what to do about a breach is the
risk manager's and the lead's business.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from execdesk.domain.marks import PORTFOLIO, Breach, Holdings, Limit, Snapshot, Watermarks

#: a drawdown of exactly the limit reaches it, though float arithmetic may land a hair below
LIMIT_TOLERANCE = 1e-9
FloatArray = npt.NDArray[np.float64]


class Monitor:
    """Marks holdings to market over stretches of grid bars (see module docstring)."""

    def __init__(self, close_matrix: FloatArray, snapshot_mask: npt.NDArray[np.bool_]) -> None:
        self.close = close_matrix
        self.snapshot_mask = snapshot_mask
        self._cached: tuple[Holdings, tuple[list[str], FloatArray, FloatArray, dict[str, int]]] | None = None
        self.marks = Watermarks()

    @property
    def marks(self) -> Watermarks:
        return self._marks

    @marks.setter
    def marks(self, value: Watermarks) -> None:
        self._marks = value
        self._arrays: tuple[tuple[str, ...], FloatArray, FloatArray] | None = None  # (scopes, peak, max_dd)

    def _mark_arrays(self, scopes: list[str]) -> tuple[FloatArray, FloatArray]:
        """Peaks (NaN where none yet) and worst drawdowns per scope, as arrays mirroring the marks."""
        key = tuple(scopes)
        if self._arrays is None or self._arrays[0] != key:
            peak = np.array([self._marks.peak.get(s, np.nan) for s in scopes])
            worst = np.array([self._marks.max_drawdown.get(s, 0.0) for s in scopes])
            self._arrays = (key, peak, worst)
        return self._arrays[1], self._arrays[2]

    def advance(self, h: Holdings, a: int, b: int, limits: Sequence[Limit]
                ) -> tuple[int | None, list[Breach], list[Snapshot]]:
        """Evaluate bars ``a..b`` (inclusive). Stops at the first bar where an armed limit is reached.

        Returns (that bar or None, the breaches at it, snapshots of the bars evaluated). Watermarks
        take in every bar evaluated, the breaching bar included.
        """
        scopes, base, weights, row = self._matrices(h)
        # equity of every scope (rows) at every bar (columns): base + holdings x closes
        eq = base[:, None] + weights @ self.close[:, a: b + 1]
        peak_marks, worst_marks = self._mark_arrays(scopes)
        if a == b:
            return self._advance_one(scopes, row, eq[:, 0], peak_marks, worst_marks, a, limits)
        prev = np.where(np.isnan(peak_marks), eq[:, 0], peak_marks)
        peaks = np.maximum(np.maximum.accumulate(eq, axis=1), prev[:, None])
        dds = 1.0 - eq / peaks
        armed = [(lim, row[lim.scope]) for lim in limits if lim.scope in row]
        stop = eq.shape[1]
        if armed:
            limit_of = np.array([lim.drawdown for lim, _ in armed])[:, None] - LIMIT_TOLERANCE
            hits = dds[[r for _, r in armed]] >= limit_of
            any_hit = hits.any(axis=0)
            if any_hit.any():
                stop = int(np.argmax(any_hit)) + 1
        end = stop - 1  # offset of the last bar evaluated
        breaches = [Breach(lim.scope, lim.level, lim.drawdown, float(dds[r, end]), float(eq[r, end]),
                           float(peaks[r, end]))
                    for lim, r in armed if dds[r, end] >= lim.drawdown - LIMIT_TOLERANCE]
        self._take_marks(scopes, peaks[:, end], np.maximum(worst_marks, dds[:, : end + 1].max(axis=1)), eq[:, end],
                         peak_marks, worst_marks)
        snaps = [Snapshot(a + int(j), float(eq[0, j]), float(dds[0, j]),
                          {s: (float(eq[i, j]), float(dds[i, j])) for i, s in enumerate(scopes) if i})
                 for j in np.flatnonzero(self.snapshot_mask[a: a + end + 1])]
        return (a + end if breaches else None), breaches, snaps

    def _advance_one(self, scopes: list[str], row: dict[str, int], eq: FloatArray, peak_marks: FloatArray,
                     worst_marks: FloatArray, g: int, limits: Sequence[Limit]
                     ) -> tuple[int | None, list[Breach], list[Snapshot]]:
        """:meth:`advance` for the one bar ``g`` (the loop's eventful bars): the same arithmetic on vectors, with
        less around it."""
        peaks = np.maximum(eq, np.where(np.isnan(peak_marks), eq, peak_marks))
        dds = 1.0 - eq / peaks
        breaches = []
        if limits:
            dd_list = dds.tolist()
            for lim in limits:
                r = row.get(lim.scope)
                if r is not None and dd_list[r] >= lim.drawdown - LIMIT_TOLERANCE:
                    breaches.append(Breach(lim.scope, lim.level, lim.drawdown, dd_list[r], float(eq[r]),
                                           float(peaks[r])))
        self._take_marks(scopes, peaks, np.maximum(worst_marks, dds), eq, peak_marks, worst_marks)
        snaps = []
        if self.snapshot_mask[g]:
            e, d = eq.tolist(), dds.tolist()
            snaps.append(Snapshot(g, e[0], d[0], {s: (e[i], d[i]) for i, s in enumerate(scopes) if i}))
        return (g if breaches else None), breaches, snaps

    def _take_marks(self, scopes: list[str], new_peak: FloatArray, worst: FloatArray, last: FloatArray,
                    peak_marks: FloatArray, worst_marks: FloatArray) -> None:
        """The watermarks take in the bars evaluated: new peaks, worse drawdowns, the last equity."""
        marks = self._marks
        for i in np.flatnonzero(new_peak != peak_marks):  # NaN (no peak yet) compares unequal
            marks.set("peak", scopes[i], float(new_peak[i]))
        for i in np.flatnonzero(worst != worst_marks):
            marks.set("max_drawdown", scopes[i], float(worst[i]))
        peak_marks[:] = new_peak
        worst_marks[:] = worst
        marks.last_equity.update(zip(scopes, last.tolist(), strict=True))

    def equity_at(self, h: Holdings, g: int) -> dict[str, float]:
        """Every scope's equity at bar ``g``'s close with holdings ``h`` (marks nothing)."""
        scopes, base, weights, _row = self._matrices(h)
        return dict(zip(scopes, (base + weights @ self.close[:, g]).tolist(), strict=True))

    def _matrices(self, h: Holdings) -> tuple[list[str], FloatArray, FloatArray, dict[str, int]]:
        """Scopes (portfolio first), base equity per scope, holdings as a scope x pair matrix, and each scope's
        row."""
        if self._cached is not None and self._cached[0] is h:
            return self._cached[1]
        scopes = [PORTFOLIO, *h.deployment_base]
        base = np.zeros(len(scopes))
        weights = np.zeros((len(scopes), self.close.shape[0]))
        base[0] = h.cash
        for hold in h.portfolio:
            weights[0, hold.row] += hold.qty
        for i, dep in enumerate(scopes[1:], start=1):
            base[i] = h.deployment_base[dep]
            for hold in h.deployment_holdings.get(dep, ()):
                weights[i, hold.row] += hold.qty
                base[i] -= hold.qty * hold.avg_price  # equity = base + qty x (close - avg)
        out = (scopes, base, weights, {s: i for i, s in enumerate(scopes)})
        self._cached = (h, out)
        return out
