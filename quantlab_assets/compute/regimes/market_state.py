"""Market state: one row per date, the aggregate features the regime models read (seed 003, Phase 6).

Built from the `features` panel (one row per date and instrument). The market is the equal-weighted
portfolio of the universe's constituents: its tradable members at each date (compute/data/membership.py;
index and index ETF rows, such as sp500_sample's ^GSPC and ^IXIC or SPY, are marked `tradable: false` and
are not members of the market they measure; the features panel holds member rows only). The proxy is
the same over a universe's whole history, where a benchmark ticker may cover only part of it (arch's
^GSPC: 1999-2018).

Columns (each at date t from features at t and market returns of the last 21 dates up to t):

- market_return_1d: mean of the constituents' ret_1d (the equal-weighted proxy's daily log return);
- market_return_21d: sum of market_return_1d over the last 21 dates;
- market_vol_21d: sample standard deviation of market_return_1d over the last 21 dates, times sqrt(252);
- average_vol_21d: mean of the constituents' vol_21d;
- average_correlation_21d: the average pairwise correlation implied by the proxy's variance,
  (s_p^2 - sum(s_i^2)/N^2) / ((sum(s_i)/N)^2 - sum(s_i^2)/N^2), s_i the constituents' vol_21d and s_p
  market_vol_21d, clipped to [-1, 1] (null with fewer than 2 constituents);
- vol_ratio_21d_126d: median of the constituents' vol_ratio_21d_126d;
- breadth_ma_21d, breadth_above_ma50: the features' market breadth (the tradable members of the date);
- volume_shock_21d: median of every instrument's volume_shock_21d (null where no member has volume,
  e.g. sp500_sample's close-only stocks: its indices carry volume but are not members);
- constituents: how many constituents have a ret_1d that date.

No look-ahead: per-date aggregates read date t only, rolling ones the last 21 dates up to t.
"""

from __future__ import annotations

import datetime as dt
import math

import polars as pl

from quantlab_assets.compute import columns as c
from quantlab_assets.compute.data.membership import tradable_tickers
MARKET_WINDOW = 21
TRADING_DAYS_PER_YEAR = 252

MARKET_RETURN_1D = "market_return_1d"
MARKET_RETURN_21D = "market_return_21d"
MARKET_VOL_21D = "market_vol_21d"
AVERAGE_VOL_21D = "average_vol_21d"
AVERAGE_CORRELATION_21D = "average_correlation_21d"
VOL_RATIO = "vol_ratio_21d_126d"
BREADTH_MA_21D = "breadth_ma_21d"
BREADTH_ABOVE_MA50 = "breadth_above_ma50"
VOLUME_SHOCK_21D = "volume_shock_21d"
CONSTITUENTS = "constituents"

MARKET_STATE_COLUMNS = (
    MARKET_RETURN_1D, MARKET_RETURN_21D, MARKET_VOL_21D, AVERAGE_VOL_21D, AVERAGE_CORRELATION_21D,
    VOL_RATIO, BREADTH_MA_21D, BREADTH_ABOVE_MA50, VOLUME_SHOCK_21D,
)
# The features columns market_state reads.
FEATURE_INPUTS = ("ret_1d", "vol_21d", VOL_RATIO, BREADTH_MA_21D, BREADTH_ABOVE_MA50, VOLUME_SHOCK_21D)
# Trading days before a date that its market state reads (the 21-date windows).
MARKET_STATE_LOOKBACK_DAYS = MARKET_WINDOW - 1


def _implied_average_correlation() -> pl.Expr:
    n = pl.col(CONSTITUENTS).cast(pl.Float64)
    mean_vol_sq = pl.col("_mean_vol") ** 2
    own = pl.col("_sum_var") / n**2
    denominator = mean_vol_sq - own
    value = (pl.col(MARKET_VOL_21D) ** 2 - own) / denominator
    return pl.when((pl.col(CONSTITUENTS) >= 2) & (denominator > 0)).then(value.clip(-1.0, 1.0))


def compute_market_state(features: pl.DataFrame, universe: pl.DataFrame) -> pl.DataFrame:
    """(date, constituents, MARKET_STATE_COLUMNS...) for every date of `features`, sorted by date.

    `features` holds date, ticker and FEATURE_INPUTS (more columns are ignored); `universe` ticker and
    tradable (an instrument with `tradable` false is never a constituent). Rows of the first 20 dates of
    `features` have null rolling columns: load that much lookback. An empty `features` (no rows, perhaps
    no columns: nothing stored) gives an empty state.
    """
    if features.height == 0:
        return pl.DataFrame(schema={c.DATE: pl.Date, CONSTITUENTS: pl.Int64} | {name: pl.Float64 for name in MARKET_STATE_COLUMNS})
    missing = [name for name in (c.DATE, c.TICKER, *FEATURE_INPUTS) if name not in features.columns]
    if missing:
        raise ValueError(f"compute_market_state needs features columns {missing}")
    member = pl.col(c.TICKER).is_in(tradable_tickers(universe).implode())
    ret = pl.when(member).then(pl.col("ret_1d"))
    vol = pl.when(member & pl.col("ret_1d").is_not_null()).then(pl.col("vol_21d"))
    daily = (
        features.lazy()
        .group_by(c.DATE)
        .agg(
            ret.mean().alias(MARKET_RETURN_1D),
            ret.count().cast(pl.Int64).alias(CONSTITUENTS),
            vol.mean().alias(AVERAGE_VOL_21D),
            vol.drop_nulls().len().alias("_vol_count"),
            (vol**2).sum().alias("_sum_var"),
            pl.when(member).then(pl.col(VOL_RATIO)).median().alias(VOL_RATIO),
            pl.col(BREADTH_MA_21D).drop_nulls().first().alias(BREADTH_MA_21D),
            pl.col(BREADTH_ABOVE_MA50).drop_nulls().first().alias(BREADTH_ABOVE_MA50),
            pl.col(VOLUME_SHOCK_21D).median().alias(VOLUME_SHOCK_21D),
        )
        .sort(c.DATE)
    )
    state = daily.with_columns(
        pl.col(MARKET_RETURN_1D).rolling_sum(MARKET_WINDOW, min_samples=MARKET_WINDOW).alias(MARKET_RETURN_21D),
        (pl.col(MARKET_RETURN_1D).rolling_std(MARKET_WINDOW, min_samples=MARKET_WINDOW)
         * math.sqrt(TRADING_DAYS_PER_YEAR)).alias(MARKET_VOL_21D),
        # Every constituent with a return needs its vol for the implied correlation to be defined.
        pl.when(pl.col("_vol_count") == pl.col(CONSTITUENTS)).then(pl.col(AVERAGE_VOL_21D)).alias("_mean_vol"),
    ).with_columns(_implied_average_correlation().alias(AVERAGE_CORRELATION_21D))
    return state.select(c.DATE, CONSTITUENTS, *MARKET_STATE_COLUMNS).collect(engine="in-memory")


def truncation_violations(features: pl.DataFrame, universe: pl.DataFrame, cuts: list[dt.date]) -> list[str]:
    """The look-ahead property: market state at dates <= cut is the same with or without the features after cut.

    Compares exactly (bit for bit, nulls equal to nulls); one line per cut date that differs.
    """
    full = compute_market_state(features, universe)
    violations = []
    for cut in cuts:
        truncated = compute_market_state(features.filter(pl.col(c.DATE) <= cut), universe)
        if not truncated.equals(full.filter(pl.col(c.DATE) <= cut)):
            violations.append(f"market state up to {cut} changes when the features after {cut} are removed")
    return violations
