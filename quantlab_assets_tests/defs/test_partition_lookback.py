"""The partition lookback covers the longest feature window on a real exchange calendar (NYSE dates of sp500_sample)."""

from __future__ import annotations

import datetime as dt

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from quantlab_assets.compute import columns as c
from quantlab_assets.compute.data.cleaning import CleaningParams, clean_bars
from quantlab_assets.compute.data.packaged_sources import read_sp500_sample
from quantlab_assets.compute.features.compute import FEATURE_LOOKBACK_DAYS, MAX_LOOKBACK_DAYS, compute_features
from quantlab_assets.compute.labels.compute import ATR_LOOKBACK_DAYS
from quantlab_assets.compute.universe import load_universe_catalog, universe_frame
from quantlab_assets.defs.partitions import LOOKBACK_MONTHS, months_window

# Rows counted from a cumulative sum of log returns (days since the 252-day high) break exact price ties
# by rounding noise that depends on where the frame starts (GE closed at 184.624 on 2000-10-17 and
# 2000-10-19): they are compared apart from the lookback question.
TIE_SENSITIVE = ("days_since_high_252d", "days_since_high_252d__wz")
# The month where the 13 months before hold only 267 trading days (September 2001 had 15).
LEAN_MONTH = dt.date(2001, 10, 1)


@pytest.fixture(scope="module")
def sample() -> pl.DataFrame:
    return read_sp500_sample()


def _month_keys_before(month: dt.date, count: int) -> list[str]:
    """The `count` month keys before `month` and `month` itself, oldest first (the lookback mapping's months)."""
    index = month.year * 12 + month.month - 1
    return [dt.date((i // 12), i % 12 + 1, 1).isoformat() for i in range(index - count, index + 1)]


def test_every_month_of_a_real_calendar_has_the_longest_lookback_before_it(sample: pl.DataFrame) -> None:
    months = (
        sample.select(pl.col(c.DATE).unique()).group_by(pl.col(c.DATE).dt.truncate("1mo").alias("month")).len().sort("month")
    )
    days = dict(months.iter_rows())
    short = {}
    for month in months["month"].to_list()[LOOKBACK_MONTHS:]:
        prior = sum(days.get(dt.date.fromisoformat(key), 0) for key in _month_keys_before(month, LOOKBACK_MONTHS)[:-1])
        if prior < MAX_LOOKBACK_DAYS - 1:
            short[month] = prior
    assert months.height - LOOKBACK_MONTHS >= 380 and not short, short
    # Everything that reads the lookback months stays within MAX_LOOKBACK_DAYS.
    cleaning = CleaningParams()
    assert max(FEATURE_LOOKBACK_DAYS, ATR_LOOKBACK_DAYS, cleaning.min_history_days, cleaning.missing_window_days,
               cleaning.long_sigma_window) <= MAX_LOOKBACK_DAYS


def test_features_of_a_lean_month_through_the_partition_lookback_equal_the_full_history(sample: pl.DataFrame) -> None:
    spec = load_universe_catalog()["sp500_sample"]
    universe = universe_frame(spec)
    month_first, month_last = months_window([LEAN_MONTH.isoformat()])
    full_window = (dt.date(1990, 1, 1), month_last)
    bars = clean_bars(
        sample.filter(pl.col(c.DATE) <= month_last), universe[c.TICKER], window=full_window,
        as_of=month_last, holidays=spec.holidays,
    ).cleaned
    lookback_first, _ = months_window(_month_keys_before(LEAN_MONTH, LOOKBACK_MONTHS))
    in_month = pl.col(c.DATE) >= month_first

    full = compute_features(bars, universe, benchmark=spec.benchmark).frame.filter(in_month)
    partition = compute_features(
        bars.filter(pl.col(c.DATE) >= lookback_first), universe, benchmark=spec.benchmark
    ).frame.filter(in_month)

    assert full.height > 400 and full["ret_21d__rz"].null_count() == 0
    assert_frame_equal(partition.drop(TIE_SENSITIVE), full.drop(TIE_SENSITIVE))
