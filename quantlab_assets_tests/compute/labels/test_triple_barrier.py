"""Triple-barrier labels and Wilder's ATR: hand-computed examples, and the vectorised labels against a
naive per-sample loop on random bars with ties, close-only rows, gaps and stale prices."""

from __future__ import annotations

import math

import numpy as np
import polars as pl
import pytest

from quantlab_assets.compute import columns as c
from quantlab_assets.compute.labels.compute import LabelParams, compute_labels
from quantlab_assets.compute.labels.triple_barrier import first_touch, wilder_atr
from quantlab_assets_tests.compute.labels.helpers import bars_from_grid, universe_frame

NAN = math.nan


def test_wilder_atr_by_hand() -> None:
    """Period 3. Column 0 has high/low and no bar on day 4; column 1 is close-only."""
    close = np.array([[10, 10], [11, 11], [11, 10.5], [13, 10.5], [NAN, 12], [11.5, 11]], dtype=float)
    high = np.array([[11, NAN], [12, NAN], [11.5, NAN], [14, NAN], [NAN, NAN], [12, NAN]], dtype=float)
    low = np.array([[9, NAN], [10, NAN], [10.5, NAN], [12, NAN], [NAN, NAN], [11, NAN]], dtype=float)
    atr = wilder_atr(close, high, low, period=3)
    # Column 0: TR = 2 (first bar: high - low), 2, 1 -> seed 5/3; TR 3 -> (2 * 5/3 + 3) / 3 = 19/9;
    # no bar; TR from the last close 13: max(1, |12 - 13|, |11 - 13|) = 2 -> (2 * 19/9 + 2) / 3 = 56/27.
    np.testing.assert_allclose(atr[:, 0], [NAN, NAN, 5 / 3, 19 / 9, NAN, 56 / 27], rtol=1e-15)
    # Column 1: TR = |close change|: none, 1, 0.5, 0 -> seed 0.5; 1.5 -> 5/6; 1 -> 8/9.
    np.testing.assert_allclose(atr[:, 1], [NAN, NAN, NAN, 0.5, 5 / 6, 8 / 9], rtol=1e-15)


def test_first_touch_by_hand() -> None:
    """Width 1, horizon 3, ATR 1 (barriers at close +- 1). Column 0 has high/low, column 1 is close-only,
    column 2 has no bar on day 4, column 3 has ATR 0."""
    c0 = [100, 100.5, 101.2, 99, 97.9, 100, 100, 100, 100, 100, 100]
    h0 = [100.2, 100.8, 101.3, 101.1, 99.5, 100.2, 103, 100.1, 100.1, 100.1, 100.1]
    l0 = [99.8, 100.2, 100.9, 98.9, 97.5, 99.8, 97, 99.9, 99.9, 99.9, 99.9]
    c1 = [100, 100.9, 101.0, 99.5, 98.9, 100, 100, 100, 100, 100, 100]
    c2 = [100, 100, 100, 100, NAN, 100, 100, 100, 100, 100, 100]
    close = np.array([c0, c1, c2, [100.0] * 11]).T
    high = np.array([h0, [NAN] * 11, c2, [100.0] * 11]).T
    low = np.array([l0, [NAN] * 11, c2, [100.0] * 11]).T
    atr = np.ones_like(close)
    atr[:, 3] = 0.0
    outcome = first_touch(close, high, low, atr, width=1.0, horizon=3)

    # t=0: upper 101, day 2's high 101.3 -> +1 after 2. t=1: lower 99.5, day 3's low 98.9 -> -1 after 2.
    # t=2: lower 100.2 -> day 3 -> -1 after 1. t=3: day 4's low 97.5 <= 98 -> -1 after 1.
    # t=4: upper 98.9, day 5's high 100.2 -> +1 after 1. t=5: day 6 (high 103, low 97) crosses both -> -1.
    # t=6, t=7: no touch in 3 days -> vertical. t >= 8: fewer than 3 days ahead.
    assert outcome.available[:, 0].tolist() == [True] * 8 + [False] * 3
    assert outcome.label[:8, 0].tolist() == [1, -1, -1, -1, 1, -1, 0, 0]
    assert outcome.offset[:8, 0].tolist() == [2, 2, 1, 1, 1, 1, 3, 3]
    assert outcome.both[:8, 0].tolist() == [False] * 5 + [True, False, False]
    # Close-only: t=0: day 2's close 101.0 reaches 101 (equality touches). t=1: upper 101.9, lower 99.9:
    # day 3's close 99.5 -> -1. t=2: lower 100 -> day 3 -> -1 after 1. t=3: lower 98.5, upper 100.5: day 4 98.9,
    # day 5 100 -> none, day 6 100 -> vertical.
    assert outcome.label[:4, 1].tolist() == [1, -1, -1, 0]
    assert outcome.offset[:4, 1].tolist() == [2, 2, 1, 3]
    # A window that contains day 4 (no bar) has no label, nor does day 4 itself.
    assert outcome.available[:, 2].tolist() == [True, False, False, False, False, True, True, True, False, False, False]
    assert not outcome.available[:, 3].any()


def naive_atr(rows: list[dict], period: int) -> list[float | None]:
    """Wilder's ATR over one instrument's rows in date order, one row at a time."""
    atr: list[float | None] = []
    previous_close = None
    true_ranges: list[float] = []
    value = None
    for row in rows:
        high, low, close = row[c.HIGH], row[c.LOW], row[c.CLOSE]
        if high is not None and low is not None:
            tr = high - low if previous_close is None else max(high - low, abs(high - previous_close), abs(low - previous_close))
        else:
            tr = None if previous_close is None else abs(close - previous_close)
        if tr is not None:
            true_ranges.append(tr)
            if len(true_ranges) == period:
                value = sum(true_ranges) / period
            elif len(true_ranges) > period:
                value = ((period - 1) * value + tr) / period
        atr.append(value if tr is not None and len(true_ranges) >= period else None)
        previous_close = close
    return atr


def naive_triple_barrier(bars: pl.DataFrame, params: LabelParams) -> tuple[pl.DataFrame, int]:
    """The triple barrier of every row, one sample and one day at a time; also the number of ties seen."""
    calendar = bars[c.DATE].unique().sort().to_list()
    position = {day: index for index, day in enumerate(calendar)}
    out, ties = [], 0
    for (ticker,), group in bars.sort(c.DATE).group_by(c.TICKER, maintain_order=True):
        rows = group.to_dicts()
        atr = naive_atr(rows, params.atr_period)
        for j, row in enumerate(rows):
            result = {c.DATE: row[c.DATE], c.TICKER: ticker, "tb_label": None, "tb_barrier": None, "tb_touch_date": None, "tb_end": None}
            p, horizon = position[row[c.DATE]], params.barrier_horizon
            future = rows[j + 1 : j + 1 + horizon]
            complete = len(future) == horizon and all(position[f[c.DATE]] == p + 1 + h for h, f in enumerate(future))
            if complete and atr[j] is not None and atr[j] > 0:
                upper = row[c.CLOSE] + params.barrier_width * atr[j]
                lower = row[c.CLOSE] - params.barrier_width * atr[j]
                label, barrier, touch = 0, "vertical", future[-1][c.DATE]
                for bar in future:
                    high = bar[c.HIGH] if bar[c.HIGH] is not None else bar[c.CLOSE]
                    low = bar[c.LOW] if bar[c.LOW] is not None else bar[c.CLOSE]
                    if low <= lower or high >= upper:
                        tie = low <= lower and high >= upper
                        ties += tie
                        label = -1 if low <= lower else 1
                        barrier, touch = "both" if tie else {-1: "lower", 1: "upper"}[label], bar[c.DATE]
                        break
                result.update(
                    tb_label=label, tb_barrier=barrier, tb_touch_date=touch,
                    tb_end=future[-1][c.DATE],
                )
            out.append(result)
    schema = {c.DATE: pl.Date, c.TICKER: pl.String, "tb_label": pl.Int8, "tb_barrier": pl.String, "tb_touch_date": pl.Date, "tb_end": pl.Date}
    return pl.DataFrame(out, schema=schema).sort(c.DATE, c.TICKER), ties


def random_bars(seed: int) -> pl.DataFrame:
    """Six instruments x 160 days: T1 close-only, T2 partly close-only, T3 with missing days, T4 stale for
    its first 20 days (ATR 0), T5 listed late; about 4 % of bars have a range wide enough to cross both barriers."""
    rng = np.random.default_rng(seed)
    n_days, n = 160, 6
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.015, size=(n_days, n)), axis=0))
    spread = np.abs(rng.normal(0, 0.01, size=(n_days, n))) + np.where(rng.uniform(size=(n_days, n)) < 0.04, 0.08, 0.0)
    high, low = close * np.exp(spread), close * np.exp(-np.abs(rng.normal(0, 0.01, size=(n_days, n))) - (spread > 0.05) * 0.08)
    high[:, 1] = low[:, 1] = NAN
    close_only = rng.uniform(size=n_days) < 0.3
    high[close_only, 2] = low[close_only, 2] = NAN
    close[rng.uniform(size=n_days) < 0.05, 3] = NAN
    close[:20, 4] = high[:20, 4] = low[:20, 4] = 100.0
    close[:30, 5] = NAN
    return bars_from_grid([f"T{i}" for i in range(n)], close, high=high, low=low)


@pytest.mark.parametrize(
    "params",
    [LabelParams(), LabelParams(barrier_width=0.7, barrier_horizon=4, atr_period=5)],
    ids=["seed_defaults", "narrow_short"],
)
def test_triple_barrier_equals_a_naive_per_sample_loop(params: LabelParams) -> None:
    bars = random_bars(seed=3)
    universe = universe_frame({f"T{i}": ("s", "i") for i in range(6)})
    got = compute_labels(bars, universe, params).select(c.DATE, c.TICKER, "tb_label", "tb_barrier", "tb_touch_date", "tb_end")
    expected, ties = naive_triple_barrier(bars, params)
    assert got.with_columns(pl.col("tb_barrier").cast(pl.String)).equals(expected)
    labelled = got.drop_nulls("tb_label")
    assert ties > 0 and (labelled["tb_barrier"] == "both").sum() == ties
    assert set(labelled["tb_label"].to_list()) == {-1, 0, 1}
    assert labelled.filter(pl.col(c.TICKER) == "T1").height > 100  # close-only instruments are labelled
    stale = got.filter(pl.col(c.TICKER) == "T4").head(21)["tb_label"]
    assert stale.head(20).is_null().all() and stale[20] is not None  # ATR 0 while stale: no barrier width


def test_touch_date_lies_between_the_next_day_and_the_vertical_barrier() -> None:
    labels = compute_labels(random_bars(seed=4), universe_frame({f"T{i}": ("s", "i") for i in range(6)})).drop_nulls("tb_label")
    assert (labels["tb_touch_date"] > labels[c.DATE]).all()
    assert (labels["tb_touch_date"] <= labels["tb_end"]).all()
    vertical = labels["tb_barrier"] == "vertical"
    assert (labels.filter(vertical)["tb_touch_date"] == labels.filter(vertical)["tb_end"]).all()
    assert (labels.filter(vertical)["tb_label"] == 0).all()
