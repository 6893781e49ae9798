"""Fixed-width-window fractional differencing (FFD) of log prices at one fixed order d, and per
instrument the smallest d that an ADF test would choose on the training span (a diagnostic).

López de Prado (Advances in Financial Machine Learning, ch. 5): (1 - B)^d x_t = sum_k w_k x_{t-k} with
w_0 = 1, w_k = -w_{k-1} (d - k + 1) / k, i.e. w_k = (-1)^k binom(d, k). d = 1 is the first difference
(stationary, memory erased), d = 0 the level (memory kept, not stationary); the smallest d whose series
passes a unit-root test keeps the most memory a model can use safely.

The window is fixed ("FFD"): weights are dropped once |w_k| < `threshold`, and in any case after
`max_width` weights. The cap exists so a value needs at most max_width - 1 = 251 earlier bars, which the
partition lookback of a monthly partition covers: a partition's FFD then equals the full-history value
exactly. The price: for small d the threshold alone would keep more weights (about 500 at d = 0.1 or
0.2, 390 at d = 0.3, 280 at d = 0.4, at threshold 1e-4), and every truncation leaves a share sum(w) of
the level in the series. The cap raises that share only slightly (d = 0.1: 0.50 -> 0.54, d = 0.3:
0.13 -> 0.15, d >= 0.5: no change, the threshold binds first), which can push the chosen d one grid step up.

Values are per instrument over its own rows in date order (a gap cleaning left unfilled is simply
skipped), null until the instrument has a full window.

Why one fixed d (FfdParams.d = 0.4) rather than each instrument's smallest passing d: a d fitted on
data carries information about the dates it was fitted on. Fitted on everything up to `train_end`, it
reached the walk-forward test windows inside that span (moving train_end from 2015 to 2019 changed
3,212 of 6,344 ffd_log_close values dated before 2016), and no fitted span is clean for combinatorial
purged CV, which tests every group of dates, the first one included. A d per fold would need a feature
column per fold. A fixed d depends on no date: every fold of every scheme, and every refresh, sees the
same values. 0.4 is one grid step above the largest smallest-passing d on the shipped universes'
training spans (0.3 on synthetic and on sp500_sample, `select_ffd_order`); at 0.4 the ADF p-value is
below 1e-6 for all 72 of their instruments (measured on the cleaned bars up to each train_end), and
the series keeps more memory than a first difference. The `ffd_orders` asset reports the d each
instrument's training span would choose, so an instrument that needs more than 0.4 is visible.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Final, Literal

import numpy as np
import polars as pl

from quantlab_assets.compute import columns as c

FFD_LOG_CLOSE: Final = "ffd_log_close"

FfdStatus = Literal["stationary", "no_d_passes", "insufficient_history", "constant_price"]


@dataclass(frozen=True)
class FfdParams:
    """The FFD order and filter weights, and how the diagnostic's smallest passing d is searched."""

    # The order applied to every instrument (module docstring: why fixed, why 0.4).
    d: float = 0.4

    # AFML's examples use 1e-4 and 1e-5; the coarser one keeps windows short enough for the cap below
    # to bind only for d < 0.5.
    threshold: float = 1e-4
    # At most 252 weights (one trading year): fits the partition lookback (module docstring).
    max_width: int = 252
    # Grid of candidate d, coarse enough that a handful of ADF tests per instrument decide it.
    d_grid: tuple[float, ...] = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)
    adf_pvalue: float = 0.05
    # ADF with a constant and a fixed single lag, as in AFML snippet 5.4: one regression per test
    # instead of the ~30 an AIC lag search fits on 20 years of data (0.8 s vs 2.5 ms a test), and
    # daily FFD log prices have little autocorrelation left for longer lags to absorb.
    adf_maxlag: int = 1
    # The ADF needs about a year of FFD values to have power; with the widest window that means
    # max_width - 1 + 252 training bars before every d on the grid can be tested.
    min_adf_obs: int = 252

    def __post_init__(self) -> None:
        if not self.d_grid or self.max_width < 1 or self.threshold < 0:
            raise ValueError("FfdParams needs a non-empty d_grid, max_width >= 1 and threshold >= 0")

    @property
    def min_training_rows(self) -> int:
        """Training bars an instrument needs before d is chosen for it (every grid d testable)."""
        return self.max_width - 1 + self.min_adf_obs


@dataclass(frozen=True)
class FfdOrder:
    """The d chosen for one instrument, with the ADF result behind it (for asset metadata).

    status: "stationary" (d is the smallest grid d whose FFD series passed), "no_d_passes" (d is None;
    the statistics are those of the largest d tried) or "insufficient_history" (d is None, nothing
    tested: fewer than FfdParams.min_training_rows training bars) or "constant_price" (d is None: a price
    that never moved in training has no unit root to test). n_obs: the observations the reported test
    used, or the training bars when nothing was tested.
    """

    d: float | None
    adf_stat: float | None
    p_value: float | None
    n_obs: int
    status: FfdStatus


def ffd_weights(d: float, threshold: float = FfdParams.threshold, max_width: int = FfdParams.max_width) -> np.ndarray:
    """w_0 .. w_{L-1}: the weights down to the first one with |w_k| < threshold, at most max_width of them."""
    k = np.arange(1, max_width)
    weights = np.concatenate([[1.0], np.cumprod(-(d - k + 1) / k)])
    small = np.flatnonzero(np.abs(weights) < threshold)
    return weights[: small[0]] if small.size else weights


def apply_ffd(frame: pl.DataFrame, params: FfdParams = FfdParams()) -> pl.DataFrame:
    """`frame` (date, ticker, close, ...) with `ffd_log_close`: FFD of log(close) per ticker at params.d.

    Null for the first L - 1 rows of each ticker (L = the number of weights). All tickers are convolved
    in one numpy call over their concatenated rows; values whose window would reach into the previous
    ticker are discarded. numpy's convolution is direct (not FFT), so each value is computed from its
    own window only, bit for bit.
    """
    if frame.is_empty():  # the first months of a source: no bar has a year of history yet
        return frame.with_columns(pl.lit(None, dtype=pl.Float64).alias(FFD_LOG_CLOSE))
    codes = frame[c.TICKER].cast(pl.Enum(frame[c.TICKER].unique().sort())).to_physical().to_numpy()
    # Rows in (ticker, date) order via an integer sort: sorting the ticker strings would cost more than
    # the convolution.
    order = np.lexsort((frame[c.DATE].to_physical().to_numpy(), codes))
    ticker_codes = codes[order]
    starts = np.flatnonzero(np.r_[True, ticker_codes[1:] != ticker_codes[:-1]])
    position = np.arange(order.size) - np.repeat(starts, np.diff(np.r_[starts, order.size]))
    weights = ffd_weights(params.d, params.threshold, params.max_width)
    values = np.convolve(np.log(frame[c.CLOSE].to_numpy()[order]), weights)[: order.size]
    result = np.empty(order.size)
    result[order] = np.where(position >= len(weights) - 1, values, np.nan)
    return frame.with_columns(pl.Series(FFD_LOG_CLOSE, result, nan_to_null=True))


def _choose_d(log_close: np.ndarray, params: FfdParams) -> FfdOrder:
    if log_close.size < params.min_training_rows:
        return FfdOrder(d=None, adf_stat=None, p_value=None, n_obs=int(log_close.size), status="insufficient_history")
    if np.ptp(log_close) == 0:
        return FfdOrder(d=None, adf_stat=None, p_value=None, n_obs=int(log_close.size), status="constant_price")
    # Imported here: statsmodels (with scipy.signal) takes 0.3 s to import, and every run process loads this module.
    from statsmodels.tsa.stattools import adfuller

    for d in sorted(params.d_grid):
        series = np.convolve(log_close, ffd_weights(d, params.threshold, params.max_width), mode="valid")
        test = adfuller(series, maxlag=params.adf_maxlag, regression="c", autolag=None, result_object=True)
        if test.pvalue < params.adf_pvalue:
            return FfdOrder(d=d, adf_stat=float(test.statistic), p_value=float(test.pvalue), n_obs=int(test.nobs),
                            status="stationary")
    return FfdOrder(d=None, adf_stat=float(test.statistic), p_value=float(test.pvalue), n_obs=int(test.nobs),
                    status="no_d_passes")


def select_ffd_order(bars: pl.DataFrame, train_end: dt.date, params: FfdParams = FfdParams()) -> dict[str, FfdOrder]:
    """Per ticker, the smallest d of the grid whose FFD log price passes the ADF test on rows <= train_end.

    A diagnostic of the fixed FfdParams.d, never applied to the features (module docstring). Every
    ticker of `bars` gets an entry: one listed after train_end is reported as insufficient_history. One
    statsmodels ADF per (ticker, d tried): a loop over instruments, not rows, run once per training span.
    """
    training = bars.filter(pl.col(c.DATE) <= train_end).sort(c.TICKER, c.DATE)
    log_closes = {
        str(ticker): group[c.CLOSE].log().to_numpy()
        for (ticker,), group in training.group_by(c.TICKER, maintain_order=True)
    }
    return {
        ticker: _choose_d(log_closes.get(ticker, np.empty(0)), params)
        for ticker in bars[c.TICKER].unique().sort().to_list()
    }
