"""Microstructure features (seed 004, Model 2): volume ratios, turnover, Amihud illiquidity.

Volume is the cleaned bars' volume: 0 on forward-filled days, null for close-only instruments (whose
microstructure features are then null). Dollar volume is close * volume in the quote currency. Shares
outstanding are unknown, so turnover is measured against the instrument's own typical dollar volume.
"""

from __future__ import annotations

import polars as pl

from quantlab_assets.compute import columns as c
from quantlab_assets.compute.features import price  # noqa: F401 - registers ret_21d (read below)
from quantlab_assets.compute.features.base import DOLLAR_VOLUME, lagged
from quantlab_assets.compute.features.registry import feature
from quantlab_assets.compute.features.windows import (
    rolling_mean,
    rolling_median,
    rolling_sum,
    safe_log_ratio,
    safe_ratio,
)

VOLUME_RATIO_WINDOWS = (5, 21)
VOLUME_BASE_WINDOW = 63
# Mean-volume windows shared with regime.volume_shock (5/21 against 252).
VOLUME_MEAN_WINDOWS = (5, 21, 63, 252)
TURNOVER_WINDOW = 21
TURNOVER_BASE_WINDOW = 252
AMIHUD_WINDOW = 21
# Amihud's ratio |r| / dollar volume is ~1e-9 for a large cap; per million of dollar volume it reads ~1e-3.
AMIHUD_SCALE = 1e6
VOLUME_SIGNED_RETURN_WINDOWS = (10, 21)
# A day's abnormal volume is measured against the mean of the 63 trading days before it (not including it).
VOLUME_SHOCK_BASELINE_DAYS = 63


@feature(
    "_volume_mean_{w}d", windows=VOLUME_MEAN_WINDOWS, family="microstructure", lookback=lambda w: w, hidden=True,
    description="Mean volume over the last {w} days.",
)
def volume_mean(window: int) -> pl.Expr:
    return rolling_mean(pl.col(c.VOLUME), window)


@feature(
    "volume_ratio_{w}d_63d", windows=VOLUME_RATIO_WINDOWS, family="microstructure", scope="row",
    inputs=("_volume_mean_{w}d", "_volume_mean_63d"),
    description="Volume ratio: mean volume over the last {w} days / mean volume over the last 63 days.",
)
def volume_ratio(window: int) -> pl.Expr:
    return safe_ratio(pl.col(f"_volume_mean_{window}d"), pl.col(f"_volume_mean_{VOLUME_BASE_WINDOW}d"))


@feature(
    "_dollar_volume_mean_21d", family="microstructure", lookback=TURNOVER_WINDOW, hidden=True,
    description="Mean dollar volume (close * volume) over the last 21 days.",
)
def dollar_volume_mean() -> pl.Expr:
    return rolling_mean(pl.col(DOLLAR_VOLUME), TURNOVER_WINDOW)


@feature(
    "_dollar_volume_median_252d", family="microstructure", lookback=TURNOVER_BASE_WINDOW, hidden=True,
    description="Median daily dollar volume over the last 252 days.",
)
def dollar_volume_median() -> pl.Expr:
    return rolling_median(pl.col(DOLLAR_VOLUME), TURNOVER_BASE_WINDOW)


@feature(
    "turnover_21d", family="microstructure", scope="row", inputs=("_dollar_volume_mean_21d", "_dollar_volume_median_252d"),
    description=(
        "Turnover proxy (shares outstanding unknown): mean dollar volume (close * volume) over the last 21 days "
        "/ median daily dollar volume over the last 252 days."
    ),
)
def turnover() -> pl.Expr:
    return safe_ratio(pl.col("_dollar_volume_mean_21d"), pl.col("_dollar_volume_median_252d"))


@feature(
    "log_dollar_volume_21d", family="microstructure", scope="row", inputs=("_dollar_volume_mean_21d",),
    description="Liquidity/size proxy: log of the mean dollar volume (close * volume) over the last 21 days.",
)
def log_dollar_volume() -> pl.Expr:
    mean_dollar_volume = pl.col("_dollar_volume_mean_21d")
    return pl.when(mean_dollar_volume > 0).then(mean_dollar_volume.log())


def _amihud_ratio() -> pl.Expr:
    return pl.when(pl.col(DOLLAR_VOLUME) > 0).then(pl.col(c.LOG_RETURN).abs() / pl.col(DOLLAR_VOLUME))


@feature(
    "_amihud_sum_21d", family="microstructure", lookback=AMIHUD_WINDOW, hidden=True,
    description="Sum of |log return| / dollar volume over the traded days of the last 21.",
)
def amihud_sum() -> pl.Expr:
    return rolling_sum(_amihud_ratio().fill_null(0.0), AMIHUD_WINDOW)


@feature(
    "_traded_days_21d", family="microstructure", lookback=AMIHUD_WINDOW, hidden=True,
    description="Days of the last 21 with a return and positive dollar volume (an exact integer count).",
)
def traded_days() -> pl.Expr:
    return rolling_sum(_amihud_ratio().is_not_null().cast(pl.Int32), AMIHUD_WINDOW)


@feature(
    "amihud_21d", family="microstructure", scope="row", inputs=("ret_21d", "_amihud_sum_21d", "_traded_days_21d"),
    description=(
        "Amihud illiquidity: 1e6 * mean of |log return| / dollar volume over the days of the last 21 with "
        "positive volume; null until 21 returns are observed or when no day of the window traded."
    ),
)
def amihud() -> pl.Expr:
    mean_ratio = safe_ratio(pl.col("_amihud_sum_21d"), pl.col("_traded_days_21d").cast(pl.Float64))
    return pl.when(pl.col("ret_21d").is_not_null()).then(AMIHUD_SCALE * mean_ratio)


def _return_times_volume_shock() -> pl.Expr:
    """The day's log return times its log volume over the mean volume of the 63 days before; 0 on a day
    without trading (a forward-filled bar: its return is 0); null before 63 earlier days are observed."""
    baseline = lagged(rolling_mean(pl.col(c.VOLUME), VOLUME_SHOCK_BASELINE_DAYS))
    shocked = pl.col(c.LOG_RETURN) * safe_log_ratio(pl.col(c.VOLUME), baseline)
    return pl.when(pl.col(c.VOLUME) == 0).then(pl.lit(0.0)).otherwise(shocked)


@feature(
    "volume_signed_return_{w}d", windows=VOLUME_SIGNED_RETURN_WINDOWS, family="microstructure",
    lookback=lambda w: w + VOLUME_SHOCK_BASELINE_DAYS, warmup=lambda w: w + VOLUME_SHOCK_BASELINE_DAYS - 1,
    description=(
        "Mean over the last {w} days of the daily log return times that day's log volume shock, "
        "log(volume / mean volume of the 63 days before): the moves made on abnormal volume, with their sign "
        "(the dynamic volume-return relation: Llorente, Michaely, Saar and Wang 2002); null for close-only data."
    ),
)
def volume_signed_return(window: int) -> pl.Expr:
    return rolling_mean(_return_times_volume_shock(), window)
