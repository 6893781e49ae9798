"""Builders for the label tests: cleaned-bar frames from small (dates x tickers) grids, and a cleaned market."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence

import numpy as np
import polars as pl

from quantlab_assets.compute import columns as c
from quantlab_assets.compute.data.cleaning import CLEANED_COLUMNS
from quantlab_assets_tests.compute.builders import weekdays


def universe_frame(groups: Mapping[str, tuple[str, str]]) -> pl.DataFrame:
    """A universe from {ticker: (sector, industry)}."""
    return pl.DataFrame(
        {
            c.TICKER: list(groups),
            c.NAME: list(groups),
            c.SECTOR: [sector for sector, _ in groups.values()],
            c.INDUSTRY: [industry for _, industry in groups.values()],
        }
    )


def bars_from_grid(
    tickers: Sequence[str],
    close: np.ndarray,
    *,
    high: np.ndarray | None = None,
    low: np.ndarray | None = None,
    log_return: np.ndarray | None = None,
    start: dt.date = dt.date(2024, 1, 1),
) -> pl.DataFrame:
    """Cleaned bars (CLEANED_COLUMNS) from (days x tickers) grids; a NaN close means no row that day.

    high/low default to the close (NaN high/low: a close-only row). log_return defaults to the log of
    the close over the previous *row's* close (null on each ticker's first row), as cleaning computes it.
    """
    days = weekdays(start, close.shape[0])
    high = close if high is None else high
    low = close if low is None else low
    rows = [
        {
            c.DATE: days[day], c.TICKER: ticker, c.OPEN: float(close[day, i]), c.HIGH: _value(high[day, i]),
            c.LOW: _value(low[day, i]), c.CLOSE: float(close[day, i]), c.RAW_CLOSE: float(close[day, i]),
            c.ADJ_FACTOR: 1.0, c.VOLUME: 1000.0, c.LOG_RETURN: None if log_return is None else _value(log_return[day, i]),
            c.IS_FILLED: False, c.IS_OUTLIER: False,
        }
        for day in range(close.shape[0])
        for i, ticker in enumerate(tickers)
        if np.isfinite(close[day, i])
    ]
    schema = {
        c.DATE: pl.Date, c.TICKER: pl.String, **{name: pl.Float64 for name in (*c.PRICE_COLUMNS, c.VOLUME, c.LOG_RETURN, c.RAW_CLOSE, c.ADJ_FACTOR)},
        c.IS_FILLED: pl.Boolean, c.IS_OUTLIER: pl.Boolean,
    }
    frame = pl.DataFrame(rows, schema=schema).select(CLEANED_COLUMNS)
    return frame if log_return is not None else with_log_returns(frame)


def with_log_returns(bars: pl.DataFrame) -> pl.DataFrame:
    """`bars` with log_return recomputed from the closes (log of close over the previous row's close)."""
    ratio = pl.col(c.CLOSE) / pl.col(c.CLOSE).shift(1)
    return (
        bars.sort(c.TICKER, c.DATE)
        .with_columns(ratio.log().over(c.TICKER).alias(c.LOG_RETURN))
        .sort(c.DATE, c.TICKER)
    )


def _value(x: float) -> float | None:
    return float(x) if np.isfinite(x) else None
