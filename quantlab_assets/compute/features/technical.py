"""Technical features (seed 004, Model 2): 12-1 momentum, 1-month reversal, moving-average gaps, Wilder's
RSI and drawdown statistics."""

from __future__ import annotations

import polars as pl

from quantlab_assets.compute import columns as c
from quantlab_assets.compute.features import kernels, price  # noqa: F401 - price registers ret_21d (read below)
from quantlab_assets.compute.features.base import LOG_PRICE, POS, PRICE, PRICE_CHANGE, TICKER_ID, lagged
from quantlab_assets.compute.features.registry import feature
from quantlab_assets.compute.features.windows import (
    full_window,
    kernel_struct,
    rolling_max,
    rolling_mean,
    rolling_sum,
    safe_ratio,
)

YEAR = 252
MONTH = 21
MA_WINDOWS = (20, 50, 200)
RSI_WINDOW = 14
HIGH_WINDOW = 252


@feature(
    "mom_12_1", family="technical", lookback=YEAR, warmup=YEAR,
    description=(
        "12-1 momentum: log return from t-252 to t-21 (sum of the daily log returns of rows t-251..t-21), "
        "skipping the most recent month."
    ),
)
def momentum_12_1() -> pl.Expr:
    return lagged(rolling_sum(pl.col(c.LOG_RETURN), YEAR - MONTH), MONTH)


@feature(
    "reversal_1m", family="technical", scope="row", inputs=("ret_21d",),
    description="1-month reversal: minus the 21-day log return (high after a bad month).",
)
def reversal_1m() -> pl.Expr:
    return -pl.col("ret_21d")


@feature(
    "ma_gap_{w}", windows=MA_WINDOWS, family="technical", lookback=lambda w: w,
    description="Gap to the {w}-day moving average: P_t / mean(P over rows t-{w}+1..t) - 1 (P the return index).",
)
def moving_average_gap(window: int) -> pl.Expr:
    return pl.col(PRICE) / rolling_mean(pl.col(PRICE), window) - 1.0


def wilder_average(x: pl.Expr, window: int) -> pl.Expr:
    """Wilder's smoothing of x per instrument (x null on an instrument's first row only): the simple mean
    of its first `window` values, then avg_t = avg_{t-1} + (x_t - avg_{t-1}) / window (an EWM with alpha
    1 / window, adjust=False). The seed lands on POS == window; earlier rows stay null.
    """
    seeded = (
        pl.when(pl.col(POS) == window)
        .then(x.rolling_mean(window, min_samples=window))
        .when(pl.col(POS) > window)
        .then(x)
    )
    return seeded.ewm_mean(alpha=1.0 / window, adjust=False).over(TICKER_ID)


@feature(
    "_rsi_gain", family="technical", lookback=RSI_WINDOW + 1, warmup=RSI_WINDOW, finite_memory=False, hidden=True,
    description="Wilder average of the return index's daily gains (RSI numerator).",
)
def rsi_gain() -> pl.Expr:
    return wilder_average(pl.col(PRICE_CHANGE).clip(lower_bound=0.0), RSI_WINDOW)


@feature(
    "_rsi_loss", family="technical", lookback=RSI_WINDOW + 1, warmup=RSI_WINDOW, finite_memory=False, hidden=True,
    description="Wilder average of the return index's daily losses.",
)
def rsi_loss() -> pl.Expr:
    return wilder_average((-pl.col(PRICE_CHANGE)).clip(lower_bound=0.0), RSI_WINDOW)


@feature(
    "rsi_14", family="technical", scope="row", inputs=("_rsi_gain", "_rsi_loss"),
    description=(
        "Wilder's RSI(14) on the return index: 100 * avg gain / (avg gain + avg loss), averages seeded with "
        "the first 14 changes' simple mean then smoothed with alpha 1/14; null where both averages are 0."
    ),
)
def rsi() -> pl.Expr:
    gain, loss = pl.col("_rsi_gain"), pl.col("_rsi_loss")
    return 100.0 * safe_ratio(gain, gain + loss)


@feature(
    "dd_252d", family="technical", lookback=HIGH_WINDOW,
    description="Current drawdown from the 252-day high: P_t / max(P over rows t-251..t) - 1 (<= 0).",
)
def drawdown_from_high() -> pl.Expr:
    return (pl.col(LOG_PRICE) - rolling_max(pl.col(LOG_PRICE), HIGH_WINDOW)).exp() - 1.0


@feature(
    "days_since_high_252d", family="technical", lookback=HIGH_WINDOW,
    description="Trading days since the 252-day high: t minus the latest row of t-251..t where P is at its maximum.",
)
def days_since_high() -> pl.Expr:
    rows_since = kernel_struct(pl.col(LOG_PRICE), kernels.rolling_rows_since_max, (HIGH_WINDOW,))
    return pl.when(full_window(HIGH_WINDOW)).then(rows_since.struct.field(f"w{HIGH_WINDOW}"))
