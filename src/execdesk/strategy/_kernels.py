"""Vectorised numpy kernels behind the expression language's functions.

Each kernel matches the pandas rendering in :mod:`execdesk.strategy.nodes` (what the generated
Freqtrade strategy will compute), so a backtest through :func:`~execdesk.strategy.expr.evaluate`
and a live run agree bar for bar:

* ``crossed_above(a, b)[i] = a[i] > b[i] and a[i-1] <= b[i-1]`` (False at ``i = 0``): qtpylib's
  ``(a > b) & (a.shift(1) <= b.shift(1))``; NaN on either side compares False;
* ``shift(x, n)`` moves values ``n`` bars later and fills the first ``n`` with NaN;
* ``rolling_*(x, n)`` is the trailing window ending at (and including) the current bar, NaN until
  ``n`` bars exist and for any window holding a NaN or an infinity (pandas ``rolling(n)`` with its
  default ``min_periods=n``; pandas treats infinities in a window as missing).

All kernels are vectorised numpy (rolling ones O(len * log window)); none uses pandas.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

Floats = NDArray[np.float64]
Bools = NDArray[np.bool_]


def crossed(a: Floats, b: Floats | float, above: bool) -> Bools:
    """``a`` crossing over (``above``) or under ``b``; ``b`` may be a scalar."""
    bb = np.broadcast_to(np.asarray(b, dtype=np.float64), a.shape)
    out = np.zeros(a.shape, dtype=np.bool_)
    if a.shape[0] < 2:
        return out
    if above:
        np.logical_and(a[1:] > bb[1:], a[:-1] <= bb[:-1], out=out[1:])
    else:
        np.logical_and(a[1:] < bb[1:], a[:-1] >= bb[:-1], out=out[1:])
    return out


def shift(x: Floats, n: int) -> Floats:
    """``x`` delayed by ``n`` bars, NaN-filled at the start."""
    if n == 0:
        return x.copy()
    out = np.empty_like(x)
    out[:n] = np.nan
    out[n:] = x[: x.shape[0] - n]
    return out


def rolling_mean(x: Floats, n: int) -> Floats:
    """Trailing mean over ``n`` bars."""
    size = x.shape[0]
    if n > size:
        return np.full(size, np.nan)
    # Window sums from power-of-two block sums (one per set bit of n): O(len * log n), no
    # prefix-sum subtraction (so no cancellation error and no NaN poisoning later windows), and
    # a NaN anywhere in a window makes that window NaN, as pandas' rolling(n).mean() does.
    doubling = _Doubling(_inf_as_nan(x), np.add)
    acc = np.empty(size)
    offset = 0  # acc[i] sums x over (i - offset, i]; entries below offset - 1 are partial
    bits = n
    while True:
        if bits & 1:
            if offset == 0:
                acc[:] = doubling.block
            else:
                acc[offset:] += doubling.block[: size - offset]
            offset += doubling.width
        bits >>= 1
        if not bits:
            break
        doubling.step()
    out = acc  # reuse the buffer: the mean overwrites the sums it is computed from
    np.divide(acc[n - 1 :], n, out=out[n - 1 :])
    out[: n - 1] = np.nan
    return out


def rolling_max(x: Floats, n: int) -> Floats:
    """Trailing maximum over ``n`` bars."""
    return _rolling_extreme(x, n, np.maximum)


def rolling_min(x: Floats, n: int) -> Floats:
    """Trailing minimum over ``n`` bars."""
    return _rolling_extreme(x, n, np.minimum)


def _inf_as_nan(x: Floats) -> Floats:
    inf = np.isinf(x)
    return np.where(inf, np.nan, x) if inf.any() else x


class _Doubling:
    """Per-bar ``ufunc``-reductions over trailing windows of ``width``, doubled by :meth:`step`.

    ``block[i]`` reduces ``x[i - width + 1 .. i]`` for ``i >= width - 1``; earlier entries cover a
    partial window and are never read by the kernels. Two buffers are reused across steps:
    fresh large arrays cost page faults that would dominate these sub-millisecond kernels.
    """

    def __init__(self, x: Floats, ufunc: np.ufunc) -> None:
        self.block = x
        self.width = 1
        self.ufunc = ufunc
        self._spare: list[Floats] = []

    def step(self) -> None:
        size, w = self.block.shape[0], self.width
        dst = self._spare.pop() if self._spare else np.empty(size)
        dst[:w] = self.block[:w]
        self.ufunc(self.block[w:], self.block[: size - w], out=dst[w:])
        if self.width > 1:  # the first block is the caller's input, never overwritten
            self._spare.append(self.block)
        self.block = dst
        self.width = 2 * w


def _rolling_extreme(x: Floats, n: int, ufunc: np.ufunc) -> Floats:
    # Sparse-table doubling: a window of n is the union of two (overlapping) windows of the
    # largest power of two <= n, so O(log n) vectorised passes suffice; np.maximum/np.minimum
    # propagate NaN, and both halves lie inside the window, so a window is NaN exactly when it
    # holds a NaN (pandas' rolling(n).max() with min_periods=n).
    size = x.shape[0]
    out = np.empty(size)
    if n > size:
        out[:] = np.nan
        return out
    doubling = _Doubling(_inf_as_nan(x), ufunc)
    while doubling.width * 2 <= n:
        doubling.step()
    block, rest = doubling.block, n - doubling.width
    ufunc(block[n - 1 :], block[n - 1 - rest : size - rest], out=out[n - 1 :])
    out[: n - 1] = np.nan
    return out


def as_signal(result: object) -> Bools:
    """A condition's result as a plain bool array: NaN (or any non-True value) becomes False."""
    arr = np.asarray(result)
    if arr.dtype == np.bool_:
        return arr
    values = arr.astype(np.float64)
    # NaN != 0 is True in IEEE arithmetic, hence the explicit mask.
    return np.asarray((values != 0.0) & ~np.isnan(values))
