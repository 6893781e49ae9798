"""compute_labels on a cleaned synthetic market: labels see exactly the bars of t .. t+k, nulls sit exactly
where the future is too short, the output is deterministic and keyed like the bars."""

from __future__ import annotations

import datetime as dt

import numpy as np
import polars as pl
import pytest

from quantlab_assets.compute import columns as c
from quantlab_assets.compute.data.synthetic import SyntheticMarket
from quantlab_assets.compute.labels.compute import (
    LABEL_LOOKAHEAD_DAYS,
    LabelParams,
    compute_labels,
    direction_column,
    forward_return_column,
    label_end_column,
    relative_label_column,
)
from quantlab_assets_tests.compute.builders import clean, shuffled
from quantlab_assets_tests.compute.labels.helpers import with_log_returns

PARAMS = LabelParams()
TB_COLUMNS = ["tb_label", "tb_barrier", "tb_touch_date", "tb_end"]


@pytest.fixture(scope="module")
def bars(small_raw: pl.DataFrame, small_tickers: list[str]) -> pl.DataFrame:
    """The small market's cleaned bars, log returns recomputed from the closes, so a
    perturbed copy below differs from them only where its closes differ."""
    return with_log_returns(clean(small_raw, small_tickers).cleaned)


@pytest.fixture(scope="module")
def universe(small_market: SyntheticMarket) -> pl.DataFrame:
    return small_market.universe


@pytest.fixture(scope="module")
def labels(bars: pl.DataFrame, universe: pl.DataFrame) -> pl.DataFrame:
    return compute_labels(bars, universe)


def perturbed(bars: pl.DataFrame, selected: pl.Expr, seed: int = 0) -> pl.DataFrame:
    """`bars` with every price of the selected rows scaled by a random factor in [0.9, 1.1]."""
    factor = pl.Series(np.random.default_rng(seed).uniform(0.9, 1.1, bars.height))
    scaled = [pl.when(selected).then(pl.col(name) * factor).otherwise(pl.col(name)).alias(name) for name in (c.OPEN, c.HIGH, c.LOW, c.CLOSE, c.RAW_CLOSE)]
    return with_log_returns(bars.with_columns(scaled))


def return_columns(horizon: int) -> list[str]:
    names = [forward_return_column(horizon), direction_column(horizon), label_end_column(horizon)]
    return names + ([relative_label_column(horizon)] if horizon in PARAMS.relative_horizons else [])


@pytest.fixture(scope="module")
def cut(bars: pl.DataFrame) -> dt.date:
    """A date in the middle of the panel."""
    calendar = bars[c.DATE].unique().sort()
    return calendar[len(calendar) // 2]


@pytest.fixture(scope="module")
def after(bars: pl.DataFrame, universe: pl.DataFrame, cut: dt.date) -> pl.DataFrame:
    """Labels of the bars with every price from `cut` on perturbed."""
    return compute_labels(perturbed(bars, pl.col(c.DATE) >= cut), universe)


@pytest.mark.parametrize("horizon", PARAMS.horizons)
def test_a_label_does_not_see_bars_after_its_end_date(
    labels: pl.DataFrame, after: pl.DataFrame, cut: dt.date, horizon: int
) -> None:
    ends_before = labels[label_end_column(horizon)] < cut
    columns = [c.DATE, c.TICKER, *return_columns(horizon)]
    assert after.filter(ends_before).select(columns).equals(labels.filter(ends_before).select(columns))
    assert ends_before.sum() > 100


@pytest.mark.parametrize("horizon", PARAMS.horizons)
def test_a_label_changes_when_a_bar_inside_its_window_changes(
    labels: pl.DataFrame, after: pl.DataFrame, cut: dt.date, horizon: int
) -> None:
    straddles = (labels[c.DATE] < cut) & (labels[label_end_column(horizon)] >= cut)
    assert straddles.sum() == 6 * horizon  # every instrument, each of the k start dates before the cut
    names = [forward_return_column(horizon)] + ([relative_label_column(horizon)] if horizon in PARAMS.relative_horizons else [])
    for name in names:
        assert (after.filter(straddles)[name] != labels.filter(straddles)[name]).all(), name


def test_labels_do_not_depend_on_bars_before_their_date(
    bars: pl.DataFrame, universe: pl.DataFrame, labels: pl.DataFrame, cut: dt.date
) -> None:
    """Everything but the triple barrier's outcome, whose ATR at t is (by design) a function of the past."""
    before = compute_labels(perturbed(bars, pl.col(c.DATE) <= cut), universe)
    later = labels[c.DATE] > cut
    columns = [name for name in labels.columns if name not in ("tb_label", "tb_barrier", "tb_touch_date")]
    assert before.filter(later).select(columns).equals(labels.filter(later).select(columns))


def test_triple_barrier_does_not_see_bars_after_its_vertical_barrier(
    labels: pl.DataFrame, after: pl.DataFrame, cut: dt.date
) -> None:
    ends_before = labels["tb_end"] < cut
    assert after.filter(ends_before).select(TB_COLUMNS).equals(labels.filter(ends_before).select(TB_COLUMNS))
    assert ends_before.sum() > 100


def test_triple_barrier_changes_when_the_last_bar_of_its_window_reaches_the_upper_barrier(
    bars: pl.DataFrame, universe: pl.DataFrame, labels: pl.DataFrame
) -> None:
    """One vertical-barrier sample per instrument: its last bar's high is raised tenfold. Only bars after
    the sample's date change, so its ATR and barriers stay; the label turns into an upper touch there."""
    samples = (
        labels.filter(pl.col("tb_barrier") == "vertical")
        .group_by(c.TICKER)
        .agg(pl.all().sort_by(c.DATE).get(pl.len() // 2))
        .select(c.DATE, c.TICKER, "tb_end")
    )
    spiked_rows = samples.select(pl.struct(pl.col("tb_end").alias(c.DATE), c.TICKER)).to_series().implode()
    spiked = bars.with_columns(
        pl.when(pl.struct(c.DATE, c.TICKER).is_in(spiked_rows)).then(pl.col(c.HIGH) * 10).otherwise(pl.col(c.HIGH)).alias(c.HIGH)
    )
    changed = compute_labels(spiked, universe).join(samples, on=[c.DATE, c.TICKER], how="semi").sort(c.TICKER)
    assert changed.height == 6
    assert changed["tb_label"].to_list() == [1] * 6
    assert changed["tb_touch_date"].to_list() == samples.sort(c.TICKER)["tb_end"].to_list()


@pytest.mark.parametrize("horizon", sorted({*PARAMS.end_horizons, PARAMS.barrier_horizon}))
def test_labels_are_null_exactly_where_fewer_than_k_future_days_have_bars(
    bars: pl.DataFrame, labels: pl.DataFrame, horizon: int
) -> None:
    calendar = bars[c.DATE].unique().sort()
    position = pl.col(c.DATE).rank("dense").cast(pl.Int64)
    expected = (
        bars.select(c.DATE, c.TICKER)
        .with_columns(position.alias("position"))
        .sort(c.TICKER, c.DATE)
        .with_columns((pl.col("position").shift(-horizon).over(c.TICKER) == pl.col("position") + horizon).fill_null(False).alias("complete"))
        .sort(c.DATE, c.TICKER)
    )
    complete = expected["complete"]
    assert (~complete).sum() >= 6 * horizon  # at least the last k days of every instrument
    if horizon == PARAMS.barrier_horizon:
        assert not labels.filter(~complete)["tb_label"].is_not_null().any()
        assert (labels["tb_end"].is_not_null() <= complete).all()
    if horizon in PARAMS.end_horizons:
        assert labels[label_end_column(horizon)].is_not_null().equals(complete, check_names=False)
        assert (labels[label_end_column(horizon)].drop_nulls() == calendar.gather(expected.filter("complete")["position"] + horizon - 1)).all()
    if horizon in PARAMS.horizons:
        assert labels[forward_return_column(horizon)].is_not_null().equals(complete, check_names=False)
        assert labels[direction_column(horizon)].is_not_null().equals(complete, check_names=False)
    if horizon in PARAMS.relative_horizons:  # every day has peers here (at worst the whole universe)
        assert labels[relative_label_column(horizon)].is_not_null().equals(complete, check_names=False)


def test_labels_are_keyed_like_the_bars_sorted_and_typed(bars: pl.DataFrame, labels: pl.DataFrame) -> None:
    assert labels.select(c.DATE, c.TICKER).equals(bars.select(c.DATE, c.TICKER).sort(c.DATE, c.TICKER))
    assert labels.columns == [
        c.DATE, c.TICKER,
        *(forward_return_column(k) for k in PARAMS.horizons),
        "label_21d", "label_63d",
        *(direction_column(k) for k in PARAMS.horizons),
        *(label_end_column(k) for k in PARAMS.end_horizons),
        *TB_COLUMNS,
    ]
    assert labels.schema["tb_barrier"] == pl.Enum(["lower", "vertical", "upper", "both"])
    assert labels.schema["tb_label"] == pl.Int8 and labels.schema["tb_end"] == pl.Date
    assert labels["tb_label"].drop_nulls().n_unique() == 3


def test_labels_are_deterministic_and_independent_of_row_order(
    bars: pl.DataFrame, universe: pl.DataFrame, labels: pl.DataFrame
) -> None:
    assert compute_labels(bars, universe).equals(labels)
    assert compute_labels(shuffled(bars, seed=1), universe.reverse()).equals(labels)


def test_lookahead_is_the_longest_label_window() -> None:
    assert LABEL_LOOKAHEAD_DAYS == 63
    assert LabelParams(barrier_horizon=80).lookahead_days == 80
    with pytest.raises(ValueError, match="horizons"):
        LabelParams(horizons=(0, 5))
    with pytest.raises(ValueError, match="barrier_width"):
        LabelParams(barrier_width=0.0)


def test_bars_must_be_unique_known_and_complete(bars: pl.DataFrame, universe: pl.DataFrame) -> None:
    with pytest.raises(ValueError, match="not in the universe"):
        compute_labels(bars, universe.head(3))
    with pytest.raises(ValueError, match="duplicates"):
        compute_labels(pl.concat([bars, bars.head(1)]), universe)
    with pytest.raises(ValueError, match="log_return"):
        compute_labels(bars.drop(c.LOG_RETURN), universe)
