"""Builders shared by the compute tests: a small seeded synthetic market and tiny hand-made raw frames.

Offline, deterministic and fast: a 6-instrument, 2.5-year synthetic panel with more late listings,
missing days and planted defects than the default market, so each feature the tests look for is present
in a panel small enough to clean in a few tens of milliseconds. Fixtures built from these live in
quantlab_assets_tests/conftest.py.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import polars as pl

from quantlab_assets.compute import columns as c
from quantlab_assets.compute.data.cleaning import CleaningParams, CleaningResult, clean_bars
from quantlab_assets.compute.data.raw import as_raw_frame
from quantlab_assets.compute.data.synthetic import SyntheticMarketParams

# 2.5 years spanning the March 2020 crisis episode; half the instruments list late (within a year, so
# every instrument still reaches 252 days of history), 1 % missing days and 40x the default defect rate.
SMALL_MARKET_PARAMS = SyntheticMarketParams(
    seed=9,
    n_instruments=6,
    start=dt.date(2019, 1, 1),
    end=dt.date(2021, 6, 30),
    late_listing_share=0.5,
    max_listing_delay_days=250,
    missing_day_probability=0.01,
    defect_probability=8e-3,
)
SYNTHETIC_SOURCE_FILE = "synthetic(test)"
HAND_SOURCE_FILE = "hand.csv"

# Cleaning with the two drop rules switched off, for hand-built series far shorter than 252 days.
LENIENT = CleaningParams(min_history_days=1, max_missing_share=1.0)

RawRow = Mapping[str, Any]


def weekdays(start: dt.date, count: int) -> list[dt.date]:
    """The first `count` Monday-to-Friday dates on or after `start`."""
    days: list[dt.date] = []
    day = start
    while len(days) < count:
        if day.weekday() < 5:
            days.append(day)
        day += dt.timedelta(days=1)
    return days


def bar(day: dt.date | None, ticker: str | None, close: float | None, **fields: Any) -> dict[str, Any]:
    """One raw bar: open = high = low = close, adj_close = close and volume 1000 unless overridden."""
    row: dict[str, Any] = {
        c.DATE: day, c.TICKER: ticker, c.OPEN: close, c.HIGH: close, c.LOW: close, c.CLOSE: close,
        c.ADJ_CLOSE: close, c.VOLUME: 1000.0, c.PARSE_ERROR: None,
    }
    row.update(fields)
    return row


def series(ticker: str, closes: Sequence[float | None], start: dt.date = dt.date(2024, 1, 1)) -> list[dict[str, Any]]:
    """Bars of one instrument on consecutive weekdays from `start` (2024-01-01 is a Monday)."""
    return [bar(day, ticker, close) for day, close in zip(weekdays(start, len(closes)), closes, strict=True)]


def raw_frame(rows: Iterable[RawRow], *, source_file: str = HAND_SOURCE_FILE) -> pl.DataFrame:
    """Hand-built rows as a RAW_SCHEMA frame; source_row is the row's position unless a row sets it."""
    schema = {
        c.DATE: pl.Date, c.TICKER: pl.String, **{name: pl.Float64 for name in c.BAR_COLUMNS},
        c.PARSE_ERROR: pl.String,
    }
    rows = list(rows)
    if any(c.SOURCE_ROW in row for row in rows):
        schema[c.SOURCE_ROW] = pl.Int64
        rows = [{c.SOURCE_ROW: index, **row} for index, row in enumerate(rows)]
    return as_raw_frame(pl.DataFrame(rows, schema=schema), source="csv", source_file=source_file)


def clean(
    raw: pl.DataFrame,
    tickers: Iterable[str] | None = None,
    *,
    window: tuple[dt.date, dt.date] | None = None,
    as_of: dt.date | None = None,
    params: CleaningParams = LENIENT,
    holidays: Iterable[dt.date] = (),
    close_is_adjusted: bool | None = None,
) -> CleaningResult:
    """clean_bars with defaults fit for hand-built frames: every known ticker, the whole date span."""
    dates = raw[c.DATE].drop_nulls()
    if tickers is None:
        tickers = raw[c.TICKER].drop_nulls().unique().sort().to_list()
    window = window or (dates.min(), dates.max())
    return clean_bars(
        raw, tickers, window=window, as_of=as_of or dates.max(), params=params, holidays=holidays,
        close_is_adjusted=close_is_adjusted, universe="test universe",
    )


def shuffled(frame: pl.DataFrame, seed: int = 0) -> pl.DataFrame:
    """The rows of `frame` in a seeded random order."""
    order = np.random.default_rng(seed).permutation(frame.height)
    return frame[order.tolist()]


