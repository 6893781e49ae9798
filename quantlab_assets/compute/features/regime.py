"""Regime signals (seed 003, `regime_features`): volatility regime, volume shock, overnight gap statistics
and market breadth.

Breadth features are market-wide: one value per date (over every instrument with data that date),
repeated on each instrument's row. `breadth_ma_21d` averages breadth over the panel's last 21 dates.
The seed's advance-decline *line* (a cumulative count since the start of the data) is left out: its level
depends on where the loaded history starts, so two partitions would disagree on the same date.
"""

from __future__ import annotations

import polars as pl

from quantlab_assets.compute import columns as c
from quantlab_assets.compute.features import microstructure, price, technical  # noqa: F401 - register inputs
from quantlab_assets.compute.features.base import GAP
from quantlab_assets.compute.features.registry import feature
from quantlab_assets.compute.features.windows import rolling_max, rolling_mean, rolling_std, safe_log_ratio, safe_ratio

VOLUME_SHOCK_WINDOWS = (5, 21)
VOLUME_SHOCK_BASE_WINDOW = 252
GAP_WINDOW = 21
BREADTH_MA_WINDOW = 21


@feature(
    "vol_ratio_21d_126d", family="regime", scope="row", inputs=("vol_21d", "vol_126d"),
    description="Volatility regime: vol_21d / vol_126d (above ~1.5: a shift to high volatility).",
)
def volatility_ratio() -> pl.Expr:
    return safe_ratio(pl.col("vol_21d"), pl.col("vol_126d"))


@feature(
    "volume_shock_{w}d", windows=VOLUME_SHOCK_WINDOWS, family="regime", scope="row",
    inputs=("_volume_mean_{w}d", "_volume_mean_252d"),
    description="Volume shock: log(mean volume over the last {w} days / mean volume over the last 252 days).",
)
def volume_shock(window: int) -> pl.Expr:
    return safe_log_ratio(pl.col(f"_volume_mean_{window}d"), pl.col(f"_volume_mean_{VOLUME_SHOCK_BASE_WINDOW}d"))


_GAP_TEXT = "the overnight gaps log(open_t / close_(t-1)) of the last 21 days"


@feature(
    "gap_mean_21d", family="regime", lookback=GAP_WINDOW + 1, warmup=GAP_WINDOW,
    description=f"Mean of {_GAP_TEXT}.",
)
def gap_mean() -> pl.Expr:
    return rolling_mean(pl.col(GAP), GAP_WINDOW)


@feature(
    "gap_std_21d", family="regime", lookback=GAP_WINDOW + 1, warmup=GAP_WINDOW,
    description=f"Sample standard deviation of {_GAP_TEXT}.",
)
def gap_std() -> pl.Expr:
    return rolling_std(pl.col(GAP), GAP_WINDOW)


@feature(
    "gap_maxabs_21d", family="regime", lookback=GAP_WINDOW + 1, warmup=GAP_WINDOW,
    description=f"Largest absolute value among {_GAP_TEXT}.",
)
def gap_max_abs() -> pl.Expr:
    return rolling_max(pl.col(GAP).abs(), GAP_WINDOW)


@feature(
    "breadth_up", family="regime", scope="market", lookback=1, warmup=1, normalisable=False,
    description="Market breadth: share of the date's instruments (with a return) whose daily log return is > 0.",
)
def breadth_up() -> pl.Expr:
    return (pl.col(c.LOG_RETURN) > 0).cast(pl.Float64).mean()


@feature(
    "breadth_above_ma50", family="regime", scope="market", inputs=("ma_gap_50",), normalisable=False,
    description="Share of the date's instruments (with a 50-day MA) trading above their 50-day moving average.",
)
def breadth_above_ma50() -> pl.Expr:
    return (pl.col("ma_gap_50") > 0).cast(pl.Float64).mean()


@feature(
    "adv_decline_ratio", family="regime", scope="market", lookback=1, warmup=1, normalisable=False,
    description="Advance-decline ratio: number of instruments up / number down on the date (null if none is down).",
)
def advance_decline_ratio() -> pl.Expr:
    return safe_ratio((pl.col(c.LOG_RETURN) > 0).sum().cast(pl.Float64), (pl.col(c.LOG_RETURN) < 0).sum().cast(pl.Float64))


@feature(
    "breadth_ma_21d", family="regime", scope="market_series", inputs=("breadth_up",), lookback=BREADTH_MA_WINDOW,
    warmup=BREADTH_MA_WINDOW, normalisable=False,
    description="Mean of breadth_up over the panel's last 21 dates.",
)
def breadth_moving_average(breadth: pl.Expr) -> pl.Expr:
    return breadth.rolling_mean(BREADTH_MA_WINDOW, min_samples=BREADTH_MA_WINDOW)
