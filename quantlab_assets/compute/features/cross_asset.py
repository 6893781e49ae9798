"""Cross-asset features (seed 003, `cross_asset_features`): each instrument against the benchmark series
(the universe's market proxy, see benchmark.py), and cross-sectional percentile ranks.

Correlation, beta and relative strength pair the instrument's daily log return with the benchmark's log
return of the same date, on the instrument's rows; a window needs all of its pairs (a benchmark missing
on a date voids the windows that contain it).
"""

from __future__ import annotations

import polars as pl

from quantlab_assets.compute import columns as c
from quantlab_assets.compute.features import price, technical  # noqa: F401 - register the ranked inputs first
from quantlab_assets.compute.features.base import BENCHMARK
from quantlab_assets.compute.features.registry import feature
from quantlab_assets.compute.features.windows import rolling_sum, rolling_var, safe_ratio

CORRELATION_WINDOWS = (21, 63, 126)
BETA_WINDOWS = (63, 126, 252)
RELATIVE_STRENGTH_WINDOWS = (21, 63, 126)
MOMENT_WINDOWS = tuple(sorted(set(CORRELATION_WINDOWS) | set(BETA_WINDOWS)))


def _paired(column: str) -> pl.Expr:
    """`column` where both the instrument's and the benchmark's returns exist, else null."""
    both = pl.col(c.LOG_RETURN).is_not_null() & pl.col(BENCHMARK).is_not_null()
    return pl.when(both).then(pl.col(column))


# Second moments as sample variances (ddof 1) over full windows of pairs; the covariance follows from
# Var(x + y) = Var(x) + Var(y) + 2 Cov(x, y), so every moment is one rolling variance.
@feature(
    "_var_stock_{w}d", windows=MOMENT_WINDOWS, family="cross_asset", lookback=lambda w: w, warmup=lambda w: w, hidden=True,
    description="Variance of the instrument's daily log returns over the last {w} rows (pairs with the benchmark).",
)
def stock_variance(window: int) -> pl.Expr:
    return rolling_var(_paired(c.LOG_RETURN), window)


@feature(
    "_var_bench_{w}d", windows=MOMENT_WINDOWS, family="cross_asset", lookback=lambda w: w, warmup=lambda w: w, hidden=True,
    description="Variance of the benchmark's daily log returns over the instrument's last {w} rows.",
)
def benchmark_variance(window: int) -> pl.Expr:
    return rolling_var(_paired(BENCHMARK), window)


@feature(
    "_var_sum_{w}d", windows=MOMENT_WINDOWS, family="cross_asset", lookback=lambda w: w, warmup=lambda w: w, hidden=True,
    description="Variance of (instrument + benchmark) daily log returns over the last {w} rows.",
)
def sum_variance(window: int) -> pl.Expr:
    return rolling_var(_paired(c.LOG_RETURN) + _paired(BENCHMARK), window)


def _covariance(window: int) -> pl.Expr:
    return (pl.col(f"_var_sum_{window}d") - pl.col(f"_var_stock_{window}d") - pl.col(f"_var_bench_{window}d")) / 2.0


_MOMENTS = ("_var_stock_{w}d", "_var_bench_{w}d", "_var_sum_{w}d")


@feature(
    "corr_{w}d", windows=CORRELATION_WINDOWS, family="cross_asset", scope="row", inputs=_MOMENTS,
    description="Pearson correlation of daily log returns with the benchmark over the last {w} trading days.",
)
def rolling_correlation(window: int) -> pl.Expr:
    stock, bench = pl.col(f"_var_stock_{window}d"), pl.col(f"_var_bench_{window}d")
    defined = (stock > 0) & (bench > 0)
    return pl.when(defined).then((_covariance(window) / (stock * bench).sqrt()).clip(-1.0, 1.0))


@feature(
    "beta_{w}d", windows=BETA_WINDOWS, family="cross_asset", scope="row", inputs=_MOMENTS,
    description=(
        "CAPM beta against the benchmark over the last {w} trading days: Cov(r, r_m) / Var(r_m) of daily log returns."
    ),
)
def rolling_beta(window: int) -> pl.Expr:
    return safe_ratio(_covariance(window), pl.col(f"_var_bench_{window}d"))


@feature(
    "rel_strength_{w}d", windows=RELATIVE_STRENGTH_WINDOWS, family="cross_asset", lookback=lambda w: w,
    warmup=lambda w: w,
    description=(
        "Relative strength over {w} trading days: the instrument's cumulative log return minus the "
        "benchmark's over the same rows (a difference of log returns = log of the seed's ratio of growth)."
    ),
)
def relative_strength(window: int) -> pl.Expr:
    return rolling_sum(pl.col(c.LOG_RETURN) - pl.col(BENCHMARK), window)


def percentile_rank(x: pl.Expr) -> pl.Expr:
    """(rank - 1) / (n - 1) among the date's non-null values (ties averaged), in [0, 1]; 0.5 when n == 1."""
    count = x.count()
    return pl.when(count > 1).then((x.rank("average") - 1.0) / (count - 1)).otherwise(pl.when(x.is_not_null()).then(0.5))


@feature(
    "rank_ret_21d", family="cross_asset", scope="cross_section", inputs=("ret_21d",), normalisable=False,
    description="Cross-sectional percentile rank of ret_21d among the date's instruments, in [0, 1].",
)
def rank_return() -> pl.Expr:
    return percentile_rank(pl.col("ret_21d"))


@feature(
    "rank_vol_21d", family="cross_asset", scope="cross_section", inputs=("vol_21d",), normalisable=False,
    description="Cross-sectional percentile rank of vol_21d among the date's instruments, in [0, 1].",
)
def rank_volatility() -> pl.Expr:
    return percentile_rank(pl.col("vol_21d"))


@feature(
    "rank_mom_12_1", family="cross_asset", scope="cross_section", inputs=("mom_12_1",), normalisable=False,
    description="Cross-sectional percentile rank of mom_12_1 among the date's instruments, in [0, 1].",
)
def rank_momentum() -> pl.Expr:
    return percentile_rank(pl.col("mom_12_1"))
