"""Honest prediction diagnostics (seed 001): computed per date over exactly the rows that were predicted.

A frame of predictions holds one row per predicted (date, instrument) with its realised label; rows
without a prediction or a label are not predictions and are dropped before anything is scored. Per
date: Pearson IC, Spearman rank IC, prediction std, top-minus-bottom quintile spread. A date whose
predictions are constant has no correlation: its IC is null, never 0 and never a number from another
code path; a model that is constant on every date has a null mean IC. Averages run over the dates
where the quantity is defined and say how many those were.

ICIR is the mean daily IC over its standard deviation across dates. It is not a t-statistic: labels
of k-day horizons overlap, so neighbouring daily ICs are strongly correlated and the effective number
of independent dates is nearer n_dates / k than n_dates.

Over all rows of a group: hit rate (share of rows whose prediction and label have the same sign,
among rows with a non-zero prediction and label), calibration slope and intercept (OLS of label on
prediction: slope 1 and intercept 0 mean the prediction is on the label's scale; null when the
predictions do not vary).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

import polars as pl

from quantlab_assets.compute import columns as c

PREDICTION: Final = "prediction"
LABEL: Final = "label"
# The last date of a row's label window: the label is known from that close on.
LABEL_END: Final = "label_end"
QUINTILES: Final = 5
# A date needs this many predicted rows for a correlation (2 points always correlate perfectly).
MIN_ROWS_PER_DATE: Final = 3

SCORE_COLUMNS: Final = (
    "n_rows", "n_dates", "n_dates_ic_defined", "ic", "ic_std", "icir", "rank_ic", "rank_icir", "hit_rate",
    "prediction_std", "mean_daily_prediction_std", "quintile_spread", "calibration_slope", "calibration_intercept",
)


def per_date_scores(predictions: pl.LazyFrame, by: Sequence[str] = ()) -> pl.LazyFrame:
    """One row per (by..., date): rows, IC, rank IC, prediction std and quintile spread (null where undefined)."""
    keys = [*by, c.DATE]
    scored = predictions.drop_nulls([PREDICTION, LABEL])
    varies = (pl.col(PREDICTION).n_unique() > 1) & (pl.len() >= MIN_ROWS_PER_DATE)
    bucket = (
        ((pl.col(PREDICTION).rank("ordinal").over(keys) - 1) * QUINTILES / pl.len().over(keys))
        .floor()
        .cast(pl.Int64)
        .alias("quintile")
    )
    defined = pl.when(varies)
    return (
        scored.with_columns(bucket)
        .group_by(keys)
        .agg(
            pl.len().alias("n_rows"),
            defined.then(pl.corr(PREDICTION, LABEL, method="pearson")).alias("ic"),
            defined.then(pl.corr(PREDICTION, LABEL, method="spearman")).alias("rank_ic"),
            pl.col(PREDICTION).std(ddof=0).alias("prediction_std"),
            pl.when(varies & (pl.len() >= QUINTILES))
            .then(
                pl.col(LABEL).filter(pl.col("quintile") == QUINTILES - 1).mean()
                - pl.col(LABEL).filter(pl.col("quintile") == 0).mean()
            )
            .alias("quintile_spread"),
        )
        # A constant label on a date also leaves the correlation undefined (NaN from polars): null it.
        .with_columns(pl.col("ic", "rank_ic").fill_nan(None))
    )


def _ratio(mean: pl.Expr, std: pl.Expr) -> pl.Expr:
    return pl.when(std > 0).then(mean / std)


def score_predictions(predictions: pl.DataFrame | pl.LazyFrame, by: Sequence[str] = ()) -> pl.DataFrame:
    """The scorecard of `predictions` (columns date, prediction, label, and `by`), one row per `by` group."""
    lazy = predictions.lazy().drop_nulls([PREDICTION, LABEL])
    daily = per_date_scores(lazy, by).group_by(list(by) or pl.lit(0)).agg(
        pl.len().alias("n_dates"),
        pl.col("ic").count().alias("n_dates_ic_defined"),
        pl.col("ic").mean().alias("ic"),
        pl.col("ic").std().alias("ic_std"),
        pl.col("rank_ic").mean().alias("rank_ic"),
        pl.col("rank_ic").std().alias("rank_ic_std"),
        pl.col("prediction_std").mean().alias("mean_daily_prediction_std"),
        pl.col("quintile_spread").mean().alias("quintile_spread"),
    )
    pred, label = pl.col(PREDICTION), pl.col(LABEL)
    pooled = lazy.group_by(list(by) or pl.lit(0)).agg(
        pl.len().alias("n_rows"),
        (pred.sign() * label.sign()).filter((pred != 0) & (label != 0)).gt(0).mean().alias("hit_rate"),
        pred.std(ddof=0).alias("prediction_std"),
        pl.when(pred.var(ddof=0) > 0).then(pl.cov(PREDICTION, LABEL, ddof=0) / pred.var(ddof=0)).alias("calibration_slope"),
        label.mean().alias("_label_mean"),
        pred.mean().alias("_pred_mean"),
    )
    join_keys = list(by) or ["literal"]
    return (
        pooled.join(daily, on=join_keys, how="left")
        .with_columns(
            _ratio(pl.col("ic"), pl.col("ic_std")).alias("icir"),
            _ratio(pl.col("rank_ic"), pl.col("rank_ic_std")).alias("rank_icir"),
            (pl.col("_label_mean") - pl.col("calibration_slope") * pl.col("_pred_mean")).alias("calibration_intercept"),
        )
        .select(*by, *SCORE_COLUMNS)
        .sort(list(by) or "n_rows")
        .collect()
    )


def degeneracy_problems(predictions: pl.DataFrame, min_std: float, min_distinct_share: float) -> list[str]:
    """Why `predictions` (date, prediction) are degenerate, or []: the collapse of seed 001.

    Degenerate: the pooled prediction std is below `min_std`, or on the median date fewer than
    `min_distinct_share` of the predicted rows carry distinct values (a model that ranks nothing).
    """
    if predictions.height == 0:
        return ["no predictions"]
    problems = []
    pooled_std = predictions[PREDICTION].std(ddof=0)
    if pooled_std is None or pooled_std < min_std:
        problems.append(f"prediction std {pooled_std} below {min_std}")
    distinct_share = (
        predictions.group_by(c.DATE)
        .agg((pl.col(PREDICTION).n_unique() / pl.len()).alias("share"))["share"]
        .median()
    )
    if distinct_share < min_distinct_share:
        problems.append(f"median share of distinct predictions per date {distinct_share:.3f} below {min_distinct_share}")
    return problems


def undefined_scored_as_numbers(scorecard: pl.DataFrame) -> list[str]:
    """Scorecard rows that report a number where none exists (seed 001's IC > 0 at yhat_std = 0), or []."""
    no_dispersion = (pl.col("prediction_std") == 0) | pl.col("prediction_std").is_null()
    numbered = pl.any_horizontal(pl.col(name).is_not_null() for name in ("ic", "rank_ic", "icir", "calibration_slope"))
    bad = scorecard.filter(no_dispersion & numbered)
    return [f"{row}: predictions without dispersion but a defined IC or slope" for row in bad.iter_rows(named=True)]
