"""Data-quality rules behind the blocking checks of cleaned bars, and their agreement with cleaning."""

from __future__ import annotations

import datetime as dt
from typing import Any

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from quantlab_assets.compute import columns as c
from quantlab_assets.compute.data.cleaning import clean_bars
from quantlab_assets.compute.data.quality import duplicate_keys, examples, future_dates, ohlc_violations
from quantlab_assets_tests.compute.builders import bar, clean, raw_frame, series

DAY = dt.date(2024, 1, 2)
SCHEMA = {c.DATE: pl.Date, c.TICKER: pl.String, **{name: pl.Float64 for name in c.BAR_COLUMNS}}


def _bars(*rows: dict[str, Any]) -> pl.DataFrame:
    return pl.DataFrame(
        [{c.DATE: DAY, c.TICKER: "A", c.OPEN: 10.0, c.HIGH: 11.0, c.LOW: 9.0, c.CLOSE: 10.5, c.ADJ_CLOSE: 10.5,
          c.VOLUME: 1.0, **row} for row in rows],
        schema=SCHEMA,
    )


@pytest.mark.parametrize(
    ("row", "flagged"),
    [
        pytest.param({}, False, id="consistent"),
        pytest.param({c.HIGH: 10.5, c.LOW: 10.0, c.OPEN: 10.0}, False, id="high-equals-close-low-equals-open"),
        pytest.param({c.OPEN: None, c.HIGH: None, c.LOW: None}, False, id="close-only"),
        pytest.param({c.HIGH: 10.4}, True, id="high-below-close"),
        pytest.param({c.HIGH: 9.5}, True, id="high-below-open"),
        pytest.param({c.LOW: 10.2}, True, id="low-above-open"),
        pytest.param({c.LOW: 12.0, c.HIGH: 11.0}, True, id="low-above-high"),
        pytest.param({c.LOW: 0.0}, True, id="zero-low"),
        pytest.param({c.OPEN: None, c.HIGH: None, c.LOW: None, c.CLOSE: -1.0}, True, id="close-only-negative"),
        pytest.param({c.CLOSE: None}, True, id="missing-close"),
    ],
)
def test_ohlc_violations(row: dict[str, Any], flagged: bool) -> None:
    frame = _bars({c.TICKER: "OK"}, {c.TICKER: "X", **row})
    assert ohlc_violations(frame)[c.TICKER].to_list() == (["X"] if flagged else [])


def test_duplicate_keys_counts_each_repeated_pair_sorted() -> None:
    frame = _bars(
        {c.TICKER: "B"}, {c.TICKER: "A"}, {c.TICKER: "B"}, {c.TICKER: "B"},
        {c.TICKER: "A", c.DATE: DAY + dt.timedelta(days=1)}, {c.TICKER: "A", c.DATE: DAY - dt.timedelta(days=1)},
        {c.TICKER: "A", c.DATE: DAY - dt.timedelta(days=1)},
    )
    expected = pl.DataFrame(
        {c.DATE: [DAY - dt.timedelta(days=1), DAY], c.TICKER: ["A", "B"], "len": [2, 3]},
        schema={c.DATE: pl.Date, c.TICKER: pl.String, "len": pl.UInt32},
    )
    assert_frame_equal(duplicate_keys(frame), expected)
    assert duplicate_keys(_bars({})).height == 0


def test_future_dates_are_strictly_after_as_of() -> None:
    frame = _bars({c.DATE: DAY}, {c.DATE: DAY + dt.timedelta(days=1)}, {c.DATE: DAY - dt.timedelta(days=1)})
    assert future_dates(frame, DAY)[c.DATE].to_list() == [DAY + dt.timedelta(days=1)]
    assert future_dates(frame, DAY + dt.timedelta(days=1)).height == 0


def test_examples_shows_a_few_rows_or_none() -> None:
    assert examples(_bars().clear()) == "none"
    text = examples(_bars(*[{c.TICKER: f"T{i}"} for i in range(8)]), n=3)
    assert "T0" in text and "T2" in text and "T3" not in text


def test_cleaned_bars_pass_every_quality_rule(dirty_small_raw, small_tickers, small_market_params) -> None:
    result = clean_bars(
        dirty_small_raw, small_tickers, window=(small_market_params.start, small_market_params.end),
        as_of=small_market_params.end,
    )
    assert result.cleaned.height > 0
    assert ohlc_violations(result.cleaned).height == 0
    assert duplicate_keys(result.cleaned).height == 0
    assert future_dates(result.cleaned, small_market_params.end).height == 0


def test_quality_rules_catch_what_cleaning_rejects(dirty_small_raw) -> None:
    """Restated independently: the raw defects cleaning rejects are the ones the quality rules see."""
    assert ohlc_violations(dirty_small_raw).height > 0
    assert duplicate_keys(dirty_small_raw).height > 0


def test_a_bar_cleaning_accepts_is_not_an_ohlc_violation() -> None:
    """Cleaning (and CleanedBarsSchema) accept a high/low off by float rounding (relative 1e-9);
    the blocking check on cleaned bars must not then fail on the very same bar."""
    rows = series("A", [100.0] * 5)
    rows.append(bar(dt.date(2024, 1, 8), "A", 100.0, high=100.0 * (1 - 1e-12), low=100.0 * (1 + 1e-12)))
    result = clean(raw_frame(rows))
    assert result.quarantine.height == 0 and result.cleaned.height == 6
    assert ohlc_violations(result.cleaned).height == 0
