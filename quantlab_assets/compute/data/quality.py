"""Data-quality rules on cleaned bars, each a plain function returning the offending rows.

They back the blocking asset checks of `cleaned_bars`. They restate the rules in the simplest polars
possible, independently of the pandera schema and of the cleaning code, so a bug in either shows up as
a failed check rather than passing silently.
"""

from __future__ import annotations

import datetime as dt

import polars as pl

from quantlab_assets.compute import columns as c

# Vendors round high, low and close independently: a high a few ulps below the close is not an error.
OHLC_RELATIVE_TOLERANCE = 1e-9


def ohlc_violations(bars: pl.DataFrame) -> pl.DataFrame:
    """Rows where high < max(open, close, low) or low > min(open, close, high) beyond rounding, or a price <= 0."""
    present = pl.all_horizontal(pl.col(name).is_not_null() for name in c.PRICE_COLUMNS)
    broken = (
        (pl.col(c.HIGH) < pl.max_horizontal(c.OPEN, c.CLOSE, c.LOW) * (1 - OHLC_RELATIVE_TOLERANCE))
        | (pl.col(c.LOW) > pl.min_horizontal(c.OPEN, c.CLOSE, c.HIGH) * (1 + OHLC_RELATIVE_TOLERANCE))
    )
    non_positive = pl.any_horizontal(pl.col(name) <= 0 for name in c.PRICE_COLUMNS).fill_null(False)
    return bars.filter((present & broken) | non_positive | pl.col(c.CLOSE).is_null())


def duplicate_keys(bars: pl.DataFrame) -> pl.DataFrame:
    """(date, ticker) pairs that occur more than once, with their count."""
    return bars.group_by(c.DATE, c.TICKER).len().filter(pl.col("len") > 1).sort(c.DATE, c.TICKER)


def future_dates(bars: pl.DataFrame, as_of: dt.date) -> pl.DataFrame:
    """Rows dated after `as_of`."""
    return bars.filter(pl.col(c.DATE) > as_of)


def examples(frame: pl.DataFrame, n: int = 5) -> str:
    """A few rows as text for check metadata."""
    return str(frame.head(n)) if frame.height else "none"
