"""The look-ahead check: features at dates <= t must not change when anything after t changes.

`sampled_lookahead_violations` perturbs every bar dated after a cut date (prices, volumes and returns
multiplied by random factors), recomputes the features and compares every feature at dates <= cut with
the unperturbed run, exactly (bit for bit, nulls equal to nulls). The asset check calls it on every
materialisation with a few sampled cut dates; the test suite runs it on a synthetic panel, and on a
deliberately leaky feature to prove it detects one.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence

import numpy as np
import polars as pl

from quantlab_assets.compute import columns as c

PRICE_FIELDS = (c.OPEN, c.HIGH, c.LOW, c.CLOSE, c.RAW_CLOSE)
# Factors are drawn from [1 - PERTURBATION, 1 + PERTURBATION]: large enough that any read of the future
# moves a value, small enough that prices stay positive and OHLC stays consistent (one factor per row).
PERTURBATION = 0.5

FeatureFunction = Callable[[pl.DataFrame, pl.DataFrame], object]


def perturb_after(bars: pl.DataFrame, cut: dt.date, rng: np.random.Generator) -> pl.DataFrame:
    """`bars` with every row dated after `cut` changed: prices (one factor per row), volume and log return."""
    factors = {name: rng.uniform(1 - PERTURBATION, 1 + PERTURBATION, bars.height) for name in ("price", "volume", "return")}
    future = pl.col(c.DATE) > cut

    def scaled(name: str, factor: np.ndarray) -> pl.Expr:
        return pl.when(future).then(pl.col(name) * pl.lit(pl.Series(factor))).otherwise(pl.col(name)).alias(name)

    present = set(bars.columns)
    return bars.with_columns(
        *(scaled(name, factors["price"]) for name in PRICE_FIELDS if name in present),
        *(scaled(name, factors["volume"]) for name in (c.VOLUME,) if name in present),
        *(scaled(name, factors["return"]) for name in (c.LOG_RETURN,) if name in present),
    )


def _frame(result: object) -> pl.DataFrame:
    """A feature function may return the frame or a result object holding it as `.frame`."""
    frame = getattr(result, "frame", result)
    if not isinstance(frame, pl.DataFrame):
        raise TypeError(f"the feature function returned {type(result).__name__}, not a frame or a result with .frame")
    return frame


def changed_features(before: pl.DataFrame, after: pl.DataFrame, cut: dt.date) -> list[str]:
    """A description of each feature whose values at dates <= cut differ between the two frames."""
    keys = [c.DATE, c.TICKER]
    past_before = before.filter(pl.col(c.DATE) <= cut).sort(keys)
    past_after = after.filter(pl.col(c.DATE) <= cut).sort(keys)
    if not past_before.select(keys).equals(past_after.select(keys)):
        return [f"rows at or before {cut} differ: {past_before.height} before the perturbation, {past_after.height} after"]
    problems = []
    for name in (column for column in past_before.columns if column not in keys):
        if name not in past_after.columns:
            problems.append(f"{name}: missing after the perturbation")
            continue
        differs = ~past_before[name].eq_missing(past_after[name])
        count = int(differs.sum())
        if count:
            index = int(differs.arg_max())
            row = past_before.row(index, named=True)
            problems.append(
                f"{name}: {count} value(s) dated <= {cut} changed when only bars after it were perturbed "
                f"(first: {row[c.DATE]} {row[c.TICKER]}: {row[name]!r} -> {past_after[name][index]!r})"
            )
    return problems


def sampled_lookahead_violations(
    bars: pl.DataFrame,
    universe: pl.DataFrame,
    compute: FeatureFunction,
    cut_dates: int | Sequence[dt.date],
    rng: np.random.Generator,
) -> list[str]:
    """Descriptions of features that read the future; empty when none does.

    `compute(bars, universe)` returns the feature frame (date, ticker, features) or a result with
    `.frame`. `cut_dates` is either the cut dates themselves or how many to draw (with `rng`) from the
    dates of `bars` that have a later date. Each cut costs one recomputation.
    """
    dates = bars.get_column(c.DATE).unique().sort()
    if isinstance(cut_dates, int):
        candidates = dates[:-1].to_list()
        picked = rng.choice(len(candidates), size=min(cut_dates, len(candidates)), replace=False) if candidates else []
        cuts = sorted(candidates[int(i)] for i in picked)
    else:
        cuts = sorted(cut_dates)
    baseline = _frame(compute(bars, universe))
    problems: list[str] = []
    for cut in cuts:
        perturbed = _frame(compute(perturb_after(bars, cut, rng), universe))
        problems.extend(f"cut {cut}: {problem}" for problem in changed_features(baseline, perturbed, cut))
    return problems
