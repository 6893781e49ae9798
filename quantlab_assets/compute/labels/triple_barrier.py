"""Triple-barrier labels with ATR-wide barriers (seed 002), vectorised over the horizon.

At day t: upper = close_t + width * ATR_t, lower = close_t - width * ATR_t, vertical barrier at t + horizon
trading days. The label is +1 if a later bar's high reaches the upper barrier first, -1 if a bar's low
reaches the lower barrier first, 0 if neither is reached by the vertical barrier.

Rules:
- A bar whose range crosses *both* barriers first is marked (`both`) and labelled -1. Daily bars do
  not tell which extreme came first, so neither side may book it as a win: -1 is the long's stop-loss,
  and a reader that takes a side (meta-labels: a short profits from -1) must score a `both` touch as a
  loss for the short as well.
- A bar without high/low (close-only instruments) is seen only at its close: the path's high and low
  on that day are the close.
- ATR is Wilder's (default period 14): true range TR_t = max(high - low, |high - close_{t-1}|, |low - close_{t-1}|),
  seeded with the mean of the first `period` TRs, then ATR_t = ((period - 1) ATR_{t-1} + TR_t) / period.
  For a close-only bar TR_t falls back to |close_t - close_{t-1}|, the true range of a bar whose high
  and low equal its close. That proxy *understates* the true ATR (it misses the intraday range), so
  close-only instruments get narrower barriers and more barrier touches; it is used rather than leaving
  them unlabelled because whole close-only universes (sp500_sample) would otherwise have no labels.
- Where ATR_t is not known yet (fewer than `period` true ranges) or is 0 (a price that has not moved
  since the instrument's first bars, so the barriers would sit on the close), the label is null.
- The label is null unless the instrument has a bar on every one of the next `horizon` trading days:
  a gap in the path could hide a touch.

The first touch is found with one pass per horizon offset h = 1 .. horizon over the whole
(dates x tickers) grid: no Python loop over samples or paths. The ATR is a recursion, computed with one
pass per date over all instruments at once.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def wilder_atr(close: np.ndarray, high: np.ndarray, low: np.ndarray, period: int) -> np.ndarray:
    """Wilder's ATR on (dates x tickers) grids (NaN where there is no bar or fewer than `period` TRs yet).

    A date without a bar is skipped: the next bar's true range is measured from the last close before
    it, and the smoothing resumes where it stopped (as if the instrument's rows had no gap).
    """
    atr = np.full(close.shape, np.nan)
    last_close = np.full(close.shape[1], np.nan)
    smoothed = np.full(close.shape[1], np.nan)
    seed_sum = np.zeros(close.shape[1])
    seen = np.zeros(close.shape[1], dtype=np.int64)
    for day in range(close.shape[0]):
        hi, lo, cl = high[day], low[day], close[day]
        # fmax skips NaN: on an instrument's first bar (no previous close) TR is high - low.
        full_range = np.fmax(hi - lo, np.fmax(np.abs(hi - last_close), np.abs(lo - last_close)))
        has_range = ~np.isnan(hi) & ~np.isnan(lo)
        tr = np.where(has_range, full_range, np.abs(cl - last_close))
        valid = ~np.isnan(tr)
        seen += valid
        seed_sum += np.where(valid & (seen <= period), tr, 0.0)
        recursed = ((period - 1) * smoothed + tr) / period
        smoothed = np.where(valid & (seen == period), seed_sum / period, np.where(valid & (seen > period), recursed, smoothed))
        atr[day] = np.where(valid & (seen >= period), smoothed, np.nan)
        last_close = np.where(np.isnan(cl), last_close, cl)
    return atr


@dataclass(frozen=True)
class BarrierOutcome:
    """Per (date, ticker) cell: which barrier came first and when.

    label: +1 upper, -1 lower, 0 vertical. offset: trading days from t to the touch (`horizon` for the
    vertical barrier). both: the first touching bar crossed both barriers (label -1; a loss for either
    side). available: where the label is defined (label/offset/both are meaningless elsewhere).
    """

    label: np.ndarray
    offset: np.ndarray
    both: np.ndarray
    available: np.ndarray


def first_touch(
    close: np.ndarray, high: np.ndarray, low: np.ndarray, atr: np.ndarray, *, width: float, horizon: int
) -> BarrierOutcome:
    """Triple-barrier outcome of every cell of (dates x tickers) grids (NaN where there is no bar)."""
    n_dates = close.shape[0]
    upper = close + width * atr
    lower = close - width * atr
    path_high = np.where(np.isnan(high), close, high)
    path_low = np.where(np.isnan(low), close, low)
    never = horizon + 1
    first_upper = np.full(close.shape, never, dtype=np.int32)
    first_lower = np.full(close.shape, never, dtype=np.int32)
    # Descending h: the last write into a cell is its earliest touch.
    for h in range(horizon, 0, -1):
        rows = max(n_dates - h, 0)
        with np.errstate(invalid="ignore"):
            np.copyto(first_upper[:rows], h, where=path_high[h:] >= upper[:rows])
            np.copyto(first_lower[:rows], h, where=path_low[h:] <= lower[:rows])
    lower_first = (first_lower <= horizon) & (first_lower <= first_upper)  # both in one bar: labelled lower
    upper_first = (first_upper <= horizon) & (first_upper < first_lower)
    both = (first_lower <= horizon) & (first_lower == first_upper)
    # A bar on each of the next `horizon` days: a running count of bars, differenced (exact integers).
    bars_so_far = np.vstack([np.zeros((1, close.shape[1]), dtype=np.int32), np.cumsum(~np.isnan(close), axis=0, dtype=np.int32)])
    with_future = max(n_dates - horizon, 0)
    bars_ahead = np.full(close.shape, -1, dtype=np.int32)
    bars_ahead[:with_future] = bars_so_far[horizon + 1 :] - bars_so_far[1 : with_future + 1]
    with np.errstate(invalid="ignore"):
        available = ~np.isnan(close) & (atr > 0) & (bars_ahead == horizon)
    return BarrierOutcome(
        label=upper_first.astype(np.int8) - lower_first.astype(np.int8),
        offset=np.minimum(np.minimum(first_upper, first_lower), horizon),
        both=both,
        available=available,
    )
