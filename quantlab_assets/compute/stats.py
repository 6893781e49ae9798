"""The lab's statistics for honest comparison: Student-t intervals over a few independent units (folds,
seeds), paired differences, and the words every verdict is given in.

A score from a handful of folds or seeds is an estimate, not a fact, so every comparison in the lab is an
interval and a verdict that says "indistinguishable" or "inconclusive" when the interval allows it:

- `t_interval`: the mean of the finite values and its two-sided Student-t interval,
  mean +- t_{(1+confidence)/2, n-1} * s / sqrt(n) (s the sample standard deviation); the bounds are None
  with fewer than two values, where no spread can be estimated.
- `paired_difference`: the same interval of a - b unit by unit (a fold, a seed scored both ways), which
  removes what the units share (a hard fold is hard for both models).
- `paired_sharpe_difference`: for two daily return series of the same dates, Sharpe(a) - Sharpe(b) and its
  stationary-bootstrap percentile interval, both series resampled on the same days in the same blocks, so
  what the days share (a crash hits both books) cancels and the serial dependence is kept.
- `difference_verdict`: better / worse when the interval of a difference excludes 0, else indistinguishable.
- `criterion_verdict` and `joint_verdict`: met / not met / inconclusive for an interval against a success
  bar, and for several such criteria together.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Final, NamedTuple

import numpy as np

BETTER: Final = "better"
WORSE: Final = "worse"
INDISTINGUISHABLE: Final = "indistinguishable"
UNDEFINED: Final = "undefined"
MET: Final = "met"
NOT_MET: Final = "not met"
INCONCLUSIVE: Final = "inconclusive"


class Interval(NamedTuple):
    """A mean and its interval; None where undefined (no value: all three; one value: the bounds)."""

    mean: float | None
    low: float | None
    high: float | None


def t_critical(confidence: float, n: int) -> float:
    """The two-sided Student-t quantile for `n` values (n - 1 degrees of freedom); infinite below two values,
    where no interval exists (so no edge can clear it)."""
    # Imported here: scipy.stats loads scipy.optimize, interpolate and ndimage (0.4 s), and every Dagster run
    # process imports this module.
    from scipy import stats

    return float(stats.t.ppf(0.5 + confidence / 2, n - 1)) if n > 1 else math.inf


def standard_error(values: np.ndarray) -> float | None:
    """s / sqrt(n), s the sample standard deviation (ddof 1); None with fewer than two values."""
    return float(values.std(ddof=1) / math.sqrt(values.size)) if values.size > 1 else None


def t_interval(values: np.ndarray, confidence: float) -> Interval:
    """Mean of the finite `values` and its Student-t interval at `confidence` (two-sided)."""
    values = np.asarray(values, dtype=np.float64)
    values = values[np.isfinite(values)]
    if values.size == 0:
        return Interval(None, None, None)
    mean = float(values.mean())
    if values.size < 2:
        return Interval(mean, None, None)
    half = float(t_critical(confidence, values.size) * values.std(ddof=1) / math.sqrt(values.size))
    return Interval(mean, mean - half, mean + half)


def paired_difference(a: np.ndarray, b: np.ndarray, confidence: float) -> Interval:
    """Mean of a - b over the units where both are finite, and its Student-t interval; a[i] and b[i] must
    score the same unit (fold or seed)."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"paired_difference needs one value per unit on both sides, got {a.shape} and {b.shape}")
    return t_interval(a - b, confidence)


def _annualised_sharpe_difference(a: np.ndarray, b: np.ndarray, periods: float) -> float:
    sa, sb = a.std(ddof=1), b.std(ddof=1)
    return (a.mean() / sa - b.mean() / sb) * math.sqrt(periods) if sa > 0 and sb > 0 else math.nan


def paired_sharpe_difference(a: np.ndarray, b: np.ndarray, *, periods: float, confidence: float, block_days: float,
                             reps: int, seed: int) -> Interval:
    """Sharpe(a) - Sharpe(b) (risk-free 0, annualised with `periods` per year) and its percentile interval over
    `reps` stationary-bootstrap resamples (expected block `block_days`, seeded) of the paired days: a[i] and
    b[i] must be the returns of the same day. All None where either Sharpe is undefined (fewer than two
    days, zero dispersion); the bounds None where no resample defines it."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"paired_sharpe_difference needs the same days on both sides, got {a.shape} and {b.shape}")
    point = _annualised_sharpe_difference(a, b, periods) if a.size > 1 else math.nan
    if not math.isfinite(point):
        return Interval(None, None, None)
    # Imported here: arch loads matplotlib (0.5 s), and every run process loads this module.
    from arch.bootstrap import StationaryBootstrap

    bootstrap = StationaryBootstrap(block_days, a, b, seed=np.random.default_rng(seed))
    draws = bootstrap.apply(lambda x, y: np.array([_annualised_sharpe_difference(x, y, periods)]), reps=reps)[:, 0]
    finite = draws[np.isfinite(draws)]
    if finite.size == 0:
        return Interval(point, None, None)
    tail = (1.0 - confidence) / 2.0 * 100
    low, high = np.percentile(finite, [tail, 100 - tail])
    return Interval(point, float(low), float(high))


def t_statistic(values: np.ndarray) -> float | None:
    """Mean over its standard error: how many standard errors the mean lies from 0; None where the standard
    error is undefined or 0 (fewer than two values, or all equal)."""
    values = np.asarray(values, dtype=np.float64)
    error = standard_error(values)
    return float(values.mean() / error) if error else None


def difference_verdict(low: float | None, high: float | None, *, higher_is_better: bool = True,
                       undefined: str = UNDEFINED) -> str:
    """The verdict on a difference (first minus second) from its interval: BETTER or WORSE only when the
    interval excludes 0, INDISTINGUISHABLE when it holds 0, `undefined` when there is no interval."""
    if low is None or high is None:
        return undefined
    if low <= 0 <= high:
        return INDISTINGUISHABLE
    return BETTER if (low > 0) == higher_is_better else WORSE


def criterion_verdict(interval: Interval, bar: float, *, higher_is_better: bool) -> str:
    """Against a success bar: MET when the whole interval is on the good side of `bar` (reaching it counts),
    NOT_MET when the whole interval falls short of it, INCONCLUSIVE when it straddles the bar; UNDEFINED
    without an interval."""
    if interval.low is None or interval.high is None:
        return UNDEFINED
    worst, best = (interval.low, interval.high) if higher_is_better else (-interval.high, -interval.low)
    target = bar if higher_is_better else -bar
    if worst >= target:
        return MET
    if best < target:
        return NOT_MET
    return INCONCLUSIVE


def joint_verdict(verdicts: Iterable[str]) -> str:
    """Several criteria that must all hold: INCONCLUSIVE if any is undefined, MET if all are met, NOT_MET if
    any is not met, else INCONCLUSIVE."""
    verdicts = list(verdicts)
    if UNDEFINED in verdicts:
        return INCONCLUSIVE
    if all(verdict == MET for verdict in verdicts):
        return MET
    return NOT_MET if NOT_MET in verdicts else INCONCLUSIVE
