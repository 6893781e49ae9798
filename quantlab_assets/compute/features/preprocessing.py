"""Preprocessing variants of raw features (seed 004 Model 2 and seed 003's feature engine).

- `<name>__wz`: winsorised at the date's [1 %, 99 %] quantiles (linear interpolation, over every
  instrument with a value that date), then z-scored within the date's industry (the universe table's
  industry; sample std, ddof 1). Null where the industry has fewer than two values or no dispersion
  (a universe whose industries have one member each gets no `__wz` values).
- `<name>__rz`: rolling z-score over the instrument's last 252 rows, (x_t - mean) / std of x over rows
  t-251..t (all 252 non-null, ddof 1), null where that std is 0. The z-score adds 251 rows to the
  feature's lookback, so only short-window features get it by default (FEATURE_LOOKBACK_DAYS stays
  within the partition lookback).
- `rank_gauss_per_date`: each column replaced by its rank-gauss score within the date, the inverse
  normal CDF of (rank - 0.5) / n over the date's non-null values (ties share their average rank); what
  the tree models read (compute/models/base_models.py). The cross-sectional normalisation of Qlib's
  CSRankNorm, with the normal's quantiles where CSRankNorm scales the uniform ranks: the result depends
  only on the order of the date's values, so a level shift of the whole market, a volatility regime or
  any monotone transform of a feature within a date leaves it unchanged.
- `complete_rows`: the seed's "forward fill (limit 5), then dropna" for model inputs: each feature is
  forward-filled per instrument over at most 5 rows, then rows with any null left are dropped.

Raw columns keep their names; variants carry a suffix, so raw and normalised columns never collide.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import polars as pl
from scipy.special import ndtri

from quantlab_assets.compute import columns as c
from quantlab_assets.compute.features.base import DATE_INDEX, INDUSTRY_GROUP
from quantlab_assets.compute.features.windows import rolling_mean, rolling_std

INDUSTRY_Z_SUFFIX = "__wz"
ROLLING_Z_SUFFIX = "__rz"
WINSOR_QUANTILES = (0.01, 0.99)
ROLLING_Z_WINDOW = 252
FORWARD_FILL_LIMIT = 5
# Industry z-scores are computed a few features at a time, so their temporary columns (3 per feature)
# never all exist at once.
INDUSTRY_Z_CHUNK = 4


@dataclass(frozen=True)
class Step:
    """One `with_columns(exprs)` of the feature query, then `drop(drop)` of its temporary columns.

    Every `.over(...)` in these steps is the outermost call of its expression: polars evaluates such a
    window expression on cached groups, but recomputes the groups for a window nested inside arithmetic
    (measured 9x slower for `x - mean().over(date, industry)` than for `mean().over(...)` alone).
    """

    exprs: list[pl.Expr]
    drop: list[str] = field(default_factory=list)


def rolling_z_steps(names: Sequence[str], window: int = ROLLING_Z_WINDOW) -> list[Step]:
    """`<name>__rz` = (x_t - mean) / std of x over the instrument's last `window` rows (frame sorted by
    ticker, date), all non-null; null where the std is 0."""
    mean, std = {n: f"_rz_mean_{n}" for n in names}, {n: f"_rz_std_{n}" for n in names}
    moments = [rolling_mean(pl.col(n), window).alias(mean[n]) for n in names]
    moments += [rolling_std(pl.col(n), window).alias(std[n]) for n in names]
    scores = [
        pl.when(pl.col(std[n]) > 0).then((pl.col(n) - pl.col(mean[n])) / pl.col(std[n])).alias(n + ROLLING_Z_SUFFIX)
        for n in names
    ]
    return [Step(moments), Step(scores, drop=[*mean.values(), *std.values()])] if names else []


def industry_z_steps(
    names: Sequence[str], quantiles: tuple[float, float] = WINSOR_QUANTILES, chunk: int = INDUSTRY_Z_CHUNK
) -> list[Step]:
    """`<name>__wz`: x clipped to the date's quantiles, then z-scored within (date, industry).

    The frame must be sorted by date and hold INDUSTRY_GROUP (industry_group_expr).
    """
    steps: list[Step] = []
    for start in range(0, len(names), chunk):
        part = names[start : start + chunk]
        clipped = {n: f"_wz_clipped_{n}" for n in part}
        low, high = {n: f"_wz_low_{n}" for n in part}, {n: f"_wz_high_{n}" for n in part}
        mean, std = {n: f"_wz_mean_{n}" for n in part}, {n: f"_wz_std_{n}" for n in part}
        # The date quantiles first, each window outermost (as bounds inside clip they took 1.8x as long).
        steps.append(
            Step(
                [pl.col(n).quantile(quantiles[0], interpolation="linear").over(c.DATE).alias(low[n]) for n in part]
                + [pl.col(n).quantile(quantiles[1], interpolation="linear").over(c.DATE).alias(high[n]) for n in part]
            )
        )
        steps.append(
            Step([pl.col(n).clip(pl.col(low[n]), pl.col(high[n])).alias(clipped[n]) for n in part],
                 drop=[*low.values(), *high.values()])
        )
        steps.append(
            Step(
                [pl.col(clipped[n]).mean().over(INDUSTRY_GROUP).alias(mean[n]) for n in part]
                + [pl.col(clipped[n]).std().over(INDUSTRY_GROUP).alias(std[n]) for n in part]
            )
        )
        steps.append(
            Step(
                [
                    pl.when(pl.col(std[n]) > 0)
                    .then((pl.col(clipped[n]) - pl.col(mean[n])) / pl.col(std[n]))
                    .alias(n + INDUSTRY_Z_SUFFIX)
                    for n in part
                ],
                drop=[*clipped.values(), *mean.values(), *std.values()],
            )
        )
    return steps


def industry_group_expr(universe: pl.DataFrame) -> pl.Expr:
    """INDUSTRY_GROUP: one integer per (date, industry of the universe table) on a frame with DATE_INDEX;
    tickers the table does not list form one more industry."""
    industries = sorted(set(universe[c.INDUSTRY].to_list()))
    code = {industry: index for index, industry in enumerate(industries)}
    mapping = {
        ticker: code[industry]
        for ticker, industry in zip(universe[c.TICKER].to_list(), universe[c.INDUSTRY].to_list(), strict=True)
    }
    industry = pl.col(c.TICKER).replace_strict(mapping, default=len(industries), return_dtype=pl.Int64)
    return (pl.col(DATE_INDEX) * (len(industries) + 1) + industry).alias(INDUSTRY_GROUP)


def rank_gauss_per_date(frame: pl.DataFrame, columns: Sequence[str]) -> pl.DataFrame:
    """`frame` with each of `columns` replaced by its rank-gauss score within its date (float64).

    ndtri((rank - 0.5) / n), rank the average rank of the value among the date's n non-null values (NaN
    counts as null); null stays null, and a date with one value scores it 0. Only the date's own rows
    enter a score, so it never reads another date (no look-ahead): pass a frame of the date's members.
    """
    quantiles = [
        ((pl.col(name).fill_nan(None).rank("average") - 0.5) / pl.col(name).fill_nan(None).count())
        .over(c.DATE)
        .cast(pl.Float64)
        .alias(name)
        for name in columns
    ]
    ranked = frame.with_columns(quantiles)
    # ndtri on each whole column in numpy (a null is NaN there, and back to null): a Python function inside
    # a polars expression runs on polars' threads, and once failed there in a run process.
    return ranked.with_columns(
        pl.Series(name, ndtri(ranked[name].to_numpy()), dtype=pl.Float64).fill_nan(None) for name in columns
    )


def complete_rows(
    frame: pl.DataFrame, feature_columns: Sequence[str] | None = None, *, limit: int = FORWARD_FILL_LIMIT
) -> pl.DataFrame:
    """Forward-fill each feature per instrument over at most `limit` rows, then drop rows with a null left.

    Causal: a filled value comes from an earlier row of the same instrument. The result keeps the
    (date, ticker) order of the feature frame.
    """
    columns = list(feature_columns) if feature_columns is not None else [
        name for name in frame.columns if name not in (c.DATE, c.TICKER)
    ]
    return (
        frame.lazy()
        .sort(c.TICKER, c.DATE)
        .with_columns(pl.col(columns).forward_fill(limit).over(c.TICKER))
        .drop_nulls(columns)
        .sort(c.DATE, c.TICKER)
        .collect()
    )
