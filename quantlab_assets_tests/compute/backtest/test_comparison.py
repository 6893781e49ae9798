"""Every strategy against equal weight: the paired Sharpe difference on constructed cases whose answer is known,
and the sentence on the best candidate."""

import datetime as dt
import math

import numpy as np
import polars as pl
import pytest

from quantlab_assets.compute import columns as c
from quantlab_assets.compute.backtest.comparison import (
    DIFFERENCE,
    HIGH,
    LOW,
    VERDICT,
    best_candidate_verdict,
    paired_sharpe_difference,
    versus_equal_weight,
)
from quantlab_assets.compute.backtest.metrics import MetricParams
from quantlab_assets.compute.portfolio.names import BUY_AND_HOLD, EQUAL, LONG_SHORT, TOPK_DROPOUT
from quantlab_assets.compute.stats import BETTER, INDISTINGUISHABLE, WORSE

PARAMS = MetricParams(bootstrap_reps=300)


def _equal_weight_returns(n: int = 750, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(0.0003, 0.01, n)


def test_a_scaled_copy_has_the_same_sharpe_on_every_resample_so_the_interval_is_exactly_zero() -> None:
    # An unpaired bootstrap would give each Sharpe an interval about 1.1 wide; paired, the scale cancels.
    b = _equal_weight_returns()
    interval = paired_sharpe_difference(3.0 * b, b, PARAMS, 252.0)
    assert interval.mean == pytest.approx(0.0, abs=1e-12)
    assert abs(interval.low) < 1e-12 and abs(interval.high) < 1e-12


def test_a_constant_daily_edge_gives_its_known_difference_and_an_interval_above_zero() -> None:
    # a = b + 4 bp a day: the same dispersion, so Sharpe(a) - Sharpe(b) = 4e-4 / sd(b) x sqrt(252) on the sample
    # and, resample by resample, 4e-4 / sd(resample) x sqrt(252) > 0.
    b = _equal_weight_returns()
    interval = paired_sharpe_difference(b + 4e-4, b, PARAMS, 252.0)
    assert interval.mean == pytest.approx(4e-4 / b.std(ddof=1) * math.sqrt(252), rel=1e-9)
    assert 0 < interval.low < interval.mean < interval.high


def test_independent_noise_of_the_same_law_is_indistinguishable_from_equal_weight() -> None:
    b = _equal_weight_returns()
    a = np.random.default_rng(1).normal(0.0003, 0.01, b.size)
    interval = paired_sharpe_difference(a, b, PARAMS, 252.0)
    assert interval.low < 0 < interval.high


def _daily(dates: list[dt.date], net: np.ndarray) -> pl.DataFrame:
    return pl.DataFrame({c.DATE: pl.Series(dates, dtype=pl.Date), "net_return": net})


def test_each_strategy_is_compared_on_the_days_it_shares_with_equal_weight() -> None:
    dates = [dt.date(2020, 1, 1) + dt.timedelta(days=i) for i in range(750)]
    equal = _equal_weight_returns()
    daily = {
        EQUAL: _daily(dates, equal),
        LONG_SHORT: _daily(dates, equal + 4e-4),
        TOPK_DROPOUT: _daily(dates, equal - 4e-4),
        # One day fewer at the start: compared on the 749 common days, equal to the paired call on those.
        BUY_AND_HOLD: _daily(dates[1:], 2.0 * equal[1:] + 1e-4),
    }
    table = versus_equal_weight(daily, PARAMS)
    rows = {row["strategy"]: row for row in table.to_dicts()}
    assert rows[EQUAL][DIFFERENCE] is None and rows[EQUAL][VERDICT] == "undefined"
    assert rows[LONG_SHORT][VERDICT] == BETTER and rows[TOPK_DROPOUT][VERDICT] == WORSE
    periods = 365.25  # every calendar day: 748 intervals over 748 / 365.25 years
    expected = paired_sharpe_difference(2.0 * equal[1:] + 1e-4, equal[1:], PARAMS, periods)
    assert (rows[BUY_AND_HOLD][DIFFERENCE], rows[BUY_AND_HOLD][LOW], rows[BUY_AND_HOLD][HIGH]) == pytest.approx(tuple(expected))
    assert versus_equal_weight({LONG_SHORT: daily[LONG_SHORT]}, PARAMS)[VERDICT].to_list() == ["undefined"]


def _metrics(rows: list[tuple[str, float, float, float, float, str]]) -> pl.DataFrame:
    return pl.DataFrame(rows, schema=["strategy", "sharpe", DIFFERENCE, LOW, HIGH, VERDICT], orient="row")


def test_the_verdict_names_the_best_candidate_and_says_whether_its_interval_excludes_zero() -> None:
    # Buy-and-hold has the highest Sharpe but is a passive baseline, never the candidate.
    beats = _metrics([(BUY_AND_HOLD, 2.0, 1.0, 0.2, 1.8, BETTER), (LONG_SHORT, 1.2, 0.6, 0.1, 1.1, BETTER),
                      (TOPK_DROPOUT, 0.9, 0.3, -0.2, 0.8, INDISTINGUISHABLE), (EQUAL, 0.6, None, None, None, "undefined")])
    sentence = best_candidate_verdict(beats, 0.95)
    assert sentence.startswith("The best candidate, long_short (Sharpe 1.20)")
    assert "+0.60, 95 % paired bootstrap interval [0.10, 1.10]: it beats equal weight" in sentence
    holds = beats.filter(pl.col("strategy") != LONG_SHORT)
    assert "topk_dropout" in best_candidate_verdict(holds) and "does not beat equal weight (the interval holds 0)" in \
        best_candidate_verdict(holds)
    worse = _metrics([(TOPK_DROPOUT, 0.1, -0.5, -0.9, -0.1, WORSE)])
    assert "does not beat equal weight (it is worse" in best_candidate_verdict(worse)
    assert best_candidate_verdict(beats.filter(pl.col("strategy").is_in([EQUAL, BUY_AND_HOLD]))).startswith("No candidate")
