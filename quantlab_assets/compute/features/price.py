"""Price features (seed 003, `price_features`): multi-horizon log returns, realised volatility, momentum
and rolling maximum drawdown, with the seed's windows (short 1/5, medium 21/63, long 126/252)."""

from __future__ import annotations

import math

import polars as pl

from quantlab_assets.compute import columns as c
from quantlab_assets.compute.features import kernels
from quantlab_assets.compute.features.base import LOG_PRICE
from quantlab_assets.compute.features.registry import feature
from quantlab_assets.compute.features.windows import kernel_field, kernel_struct, rolling_std, rolling_sum

RETURN_WINDOWS = (1, 5, 21, 63, 126, 252)
VOLATILITY_WINDOWS = (5, 21, 63, 126, 252)
MOMENTUM_WINDOWS = (21, 63, 126, 252)
DRAWDOWN_WINDOWS = (21, 63, 126, 252)
TRADING_DAYS_PER_YEAR = 252
# Seed 003: "guard: window >= 2, min_periods >= 2" - a standard deviation needs two observations.
MIN_VOLATILITY_OBSERVATIONS = 2


@feature(
    "ret_{w}d", windows=RETURN_WINDOWS, family="price", lookback=lambda w: w, warmup=lambda w: w,
    description="Log return over the last {w} trading days: sum of the daily (total-return) log returns of rows t-{w}+1..t.",
)
def log_return(window: int) -> pl.Expr:
    return pl.col(c.LOG_RETURN) if window == 1 else rolling_sum(pl.col(c.LOG_RETURN), window)


@feature(
    "vol_{w}d", windows=VOLATILITY_WINDOWS, family="price", lookback=lambda w: w, warmup=MIN_VOLATILITY_OBSERVATIONS,
    description=(
        "Realised volatility over the last {w} trading days: sample standard deviation (ddof 1) of daily log "
        "returns times sqrt(252); from 2 observations on."
    ),
)
def realised_volatility(window: int) -> pl.Expr:
    return rolling_std(pl.col(c.LOG_RETURN), window, MIN_VOLATILITY_OBSERVATIONS) * math.sqrt(TRADING_DAYS_PER_YEAR)


@feature(
    "mom_{w}d", windows=MOMENTUM_WINDOWS, family="price", scope="row", inputs=("ret_{w}d",),
    description="Price momentum over {w} trading days as a simple return (seed: pct_change): exp(ret_{w}d) - 1.",
)
def momentum(window: int) -> pl.Expr:
    return pl.col(f"ret_{window}d").exp() - 1.0


@feature(
    "_largest_falls", family="price", lookback=max(DRAWDOWN_WINDOWS), hidden=True,
    description="Largest fall of the log return index within each drawdown window (kernels.rolling_max_drawdowns).",
)
def largest_falls() -> pl.Expr:
    return kernel_struct(pl.col(LOG_PRICE), kernels.rolling_max_drawdowns, DRAWDOWN_WINDOWS)


@feature(
    "mdd_{w}d", windows=DRAWDOWN_WINDOWS, family="price", scope="row", inputs=("_largest_falls",),
    lookback=lambda w: w,
    description=(
        "Maximum drawdown within the last {w} trading days (<= 0): min over rows u of the window of "
        "P_u / max(P_v, v in window, v <= u) - 1, P the return index."
    ),
)
def max_drawdown(window: int) -> pl.Expr:
    return (-kernel_field("_largest_falls", window)).exp() - 1.0
