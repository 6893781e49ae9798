"""Every strategy against equal weight on the same days: the Sharpe difference with its paired interval, and
the verdict on the best candidate.

Equal weight is the bar a strategy that trades a forecast has to clear: it holds the same members with no
forecast. Two Sharpe ratios with overlapping intervals can still differ clearly, because both books live
through the same days; the paired stationary bootstrap (compute/stats.py: paired_sharpe_difference)
resamples the days once for both, so the interval is that of the difference itself. A strategy beats equal
weight only where that interval excludes 0.

The best candidate is the strategy of the highest Sharpe among those that are not passive baselines; it is
picked after seeing every candidate's Sharpe, so its interval is optimistic by that choice (the deflated
Sharpe ratio in the metrics accounts for the number tried).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import polars as pl

from quantlab_assets.compute import columns as c
from quantlab_assets.compute.backtest.metrics import MetricParams, periods_per_year
from quantlab_assets.compute.portfolio.names import EQUAL, PASSIVE
from quantlab_assets.compute.stats import BETTER, INDISTINGUISHABLE, UNDEFINED, Interval, difference_verdict
from quantlab_assets.compute.stats import paired_sharpe_difference as paired_bootstrap

DIFFERENCE, LOW, HIGH = "sharpe_minus_equal_weight", "sharpe_minus_equal_weight_ci_low", "sharpe_minus_equal_weight_ci_high"
VERDICT = "verdict_vs_equal_weight"
COMPARISON_COLUMNS = (DIFFERENCE, LOW, HIGH, VERDICT)


def paired_sharpe_difference(a: np.ndarray, b: np.ndarray, params: MetricParams, periods: float) -> Interval:
    """Sharpe(a) - Sharpe(b) on the same days with its paired interval, under the metrics' bootstrap settings
    (confidence, expected block length, resamples, seed)."""
    return paired_bootstrap(a, b, periods=periods, confidence=params.confidence, block_days=params.block_days,
                            reps=params.bootstrap_reps, seed=params.seed)


def versus_equal_weight(daily: dict[str, pl.DataFrame], params: MetricParams = MetricParams()) -> pl.DataFrame:
    """strategy and COMPARISON_COLUMNS: each strategy's net returns (daily: strategy -> backtest frame with date,
    net_return) against equal weight's on their common dates; null for equal weight itself, and for every
    strategy where equal weight was not backtested (verdict 'undefined')."""
    equal = daily.get(EQUAL)
    rows = []
    for name, frame in daily.items():
        interval = Interval(None, None, None)
        if equal is not None and name != EQUAL:
            paired = frame.select(c.DATE, "net_return").join(
                equal.select(c.DATE, pl.col("net_return").alias("equal")), on=c.DATE, how="inner").sort(c.DATE)
            periods = params.periods_per_year or periods_per_year(paired[c.DATE])
            interval = paired_sharpe_difference(paired["net_return"].to_numpy(), paired["equal"].to_numpy(), params, periods)
        rows.append({"strategy": name, DIFFERENCE: interval.mean, LOW: interval.low, HIGH: interval.high,
                     VERDICT: difference_verdict(interval.low, interval.high)})
    schema = {"strategy": pl.String, DIFFERENCE: pl.Float64, LOW: pl.Float64, HIGH: pl.Float64, VERDICT: pl.String}
    return pl.DataFrame(rows, schema=schema)


def best_candidate_verdict(metrics: pl.DataFrame, confidence: float = MetricParams().confidence,
                           label: Callable[[str], str] = str) -> str:
    """One sentence on the candidate (not PASSIVE) of the highest Sharpe in metrics (strategy, sharpe and
    COMPARISON_COLUMNS, intervals at `confidence`): does it beat equal weight with a paired interval that
    excludes 0? `label` names a strategy for a reader."""
    candidates = metrics.filter(~pl.col("strategy").is_in(PASSIVE) & pl.col("sharpe").is_not_null())
    if candidates.height == 0 or DIFFERENCE not in metrics.columns:
        return "No candidate strategy has a Sharpe ratio and a paired comparison with equal weight: no verdict."
    best = candidates.sort("sharpe", descending=True).row(0, named=True)
    name = label(best["strategy"])
    if best[VERDICT] == UNDEFINED:
        return (f"The best candidate, {name} (Sharpe {best['sharpe']:.2f}), has no paired interval against equal weight: "
                "no verdict.")
    interval = f"{best[DIFFERENCE]:+.2f}, {confidence * 100:g} % paired bootstrap interval [{best[LOW]:.2f}, {best[HIGH]:.2f}]"
    head = f"The best candidate, {name} (Sharpe {best['sharpe']:.2f}), against equal weight: Sharpe difference {interval}"
    if best[VERDICT] == BETTER:
        return f"{head}: it beats equal weight (the interval excludes 0)."
    if best[VERDICT] == INDISTINGUISHABLE:
        return f"{head}: it does not beat equal weight (the interval holds 0)."
    return f"{head}: it does not beat equal weight (it is worse: the interval lies below 0)."
