"""Student-t intervals, paired differences and verdict words, against values known from tables and by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from quantlab_assets.compute.stats import (
    BETTER,
    INCONCLUSIVE,
    INDISTINGUISHABLE,
    MET,
    NOT_MET,
    UNDEFINED,
    WORSE,
    Interval,
    criterion_verdict,
    difference_verdict,
    joint_verdict,
    paired_difference,
    t_critical,
    t_interval,
    t_statistic,
)


@pytest.mark.parametrize(
    ("confidence", "n", "quantile"),
    [(0.95, 2, 12.7062), (0.95, 3, 4.3027), (0.95, 5, 2.7764), (0.95, 11, 2.2281), (0.90, 4, 2.3534), (0.99, 6, 4.0321)],
)
def test_t_critical_matches_the_table(confidence: float, n: int, quantile: float) -> None:
    assert t_critical(confidence, n) == pytest.approx(quantile, abs=1e-4)


def test_t_critical_is_infinite_without_two_values() -> None:
    assert t_critical(0.95, 1) == math.inf and t_critical(0.95, 0) == math.inf


def test_t_interval_by_hand() -> None:
    # mean 2, s = sqrt(2), n = 2: half-width 12.7062 * sqrt(2) / sqrt(2)
    mean, low, high = t_interval(np.array([1.0, 3.0]), 0.95)
    assert mean == 2.0 and high - mean == pytest.approx(12.7062, abs=1e-4) and mean - low == pytest.approx(12.7062, abs=1e-4)
    # 1..5: mean 3, s = sqrt(2.5), t = 2.7764 (4 degrees of freedom)
    interval = t_interval(np.arange(1.0, 6.0), 0.95)
    assert interval.high == pytest.approx(3 + 2.7764 * math.sqrt(2.5) / math.sqrt(5), abs=1e-4)


def test_t_interval_ignores_non_finite_values_and_is_undefined_below_two() -> None:
    assert t_interval(np.array([1.0, np.nan, 3.0, np.inf]), 0.95) == t_interval(np.array([1.0, 3.0]), 0.95)
    assert t_interval(np.array([4.0]), 0.95) == Interval(4.0, None, None)
    assert t_interval(np.array([np.nan]), 0.95) == Interval(None, None, None)
    assert t_interval(np.array([]), 0.95) == Interval(None, None, None)


def test_paired_difference_whose_interval_excludes_zero() -> None:
    # The folds differ a lot in difficulty, the first model is better on every one by about 0.1.
    first = np.array([0.50, 0.80, 0.30, 0.65, 0.40])
    second = first + np.array([0.11, 0.09, 0.10, 0.12, 0.08])
    interval = paired_difference(second, first, 0.95)
    assert interval.mean == pytest.approx(0.10) and interval.low > 0
    assert difference_verdict(interval.low, interval.high) == BETTER
    assert difference_verdict(interval.low, interval.high, higher_is_better=False) == WORSE
    # Unpaired, the fold difficulty swamps the same gap: the interval of the means' difference holds 0.
    unpaired = t_interval(second, 0.95).low - t_interval(first, 0.95).high
    assert unpaired < 0


def test_paired_difference_whose_interval_includes_zero() -> None:
    first = np.array([0.50, 0.80, 0.30, 0.65])
    second = first + np.array([0.05, -0.04, 0.03, -0.05])
    interval = paired_difference(second, first, 0.95)
    assert interval.low < 0 < interval.high
    assert difference_verdict(interval.low, interval.high) == INDISTINGUISHABLE


def test_paired_difference_uses_units_scored_on_both_sides_and_needs_one_value_per_unit() -> None:
    assert paired_difference(np.array([1.0, np.nan, 3.0]), np.array([0.0, 5.0, 1.0]), 0.95) == t_interval(
        np.array([1.0, 2.0]), 0.95)
    with pytest.raises(ValueError, match="one value per unit"):
        paired_difference(np.array([1.0, 2.0]), np.array([1.0]), 0.95)


def test_t_statistic_is_the_mean_in_standard_errors() -> None:
    assert t_statistic(np.array([1.0, 3.0])) == pytest.approx(2.0)  # mean 2, s = sqrt(2), SE 1
    assert t_statistic(np.array([0.0, 2.0, 4.0])) == pytest.approx(math.sqrt(3))  # mean 2, s = 2, SE 2 / sqrt(3)
    assert t_statistic(np.array([2.0, 2.0])) is None and t_statistic(np.array([2.0])) is None


def test_difference_verdict_words() -> None:
    assert difference_verdict(0.1, 0.3) == BETTER and difference_verdict(-0.3, -0.1) == WORSE
    assert difference_verdict(-0.3, -0.1, higher_is_better=False) == BETTER
    # An interval that reaches 0 does not exclude it.
    assert difference_verdict(0.0, 0.3) == INDISTINGUISHABLE and difference_verdict(-0.3, 0.0) == INDISTINGUISHABLE
    assert difference_verdict(None, None) == UNDEFINED == "undefined"
    assert difference_verdict(None, 1.0, undefined="undefined (fewer than two folds)") == "undefined (fewer than two folds)"
    assert (BETTER, WORSE, INDISTINGUISHABLE) == ("better", "worse", "indistinguishable")


@pytest.mark.parametrize(
    ("interval", "higher_is_better", "verdict"),
    [
        (Interval(0.25, 0.20, 0.30), True, MET),  # reaching the bar counts
        (Interval(0.15, 0.10, 0.19), True, NOT_MET),
        (Interval(0.25, 0.10, 0.40), True, INCONCLUSIVE),
        (Interval(0.1, 0.0, 0.20), False, MET),  # a cost: the whole interval at or below the bar
        (Interval(0.3, 0.21, 0.40), False, NOT_MET),
        (Interval(0.2, 0.10, 0.30), False, INCONCLUSIVE),
        (Interval(0.3, None, None), True, UNDEFINED),
    ],
)
def test_criterion_verdict_against_a_bar_of_0_2(interval: Interval, higher_is_better: bool, verdict: str) -> None:
    assert criterion_verdict(interval, 0.2, higher_is_better=higher_is_better) == verdict


def test_joint_verdict_needs_every_criterion() -> None:
    assert joint_verdict([MET, MET]) == MET == "met"
    assert joint_verdict([MET, NOT_MET]) == NOT_MET == "not met"
    assert joint_verdict([INCONCLUSIVE, NOT_MET]) == NOT_MET
    assert joint_verdict([MET, INCONCLUSIVE]) == INCONCLUSIVE == "inconclusive"
    # Without an interval nothing is decided, even where the other criterion already fails.
    assert joint_verdict([UNDEFINED, NOT_MET]) == INCONCLUSIVE
