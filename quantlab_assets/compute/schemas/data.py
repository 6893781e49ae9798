"""Bars as received, cleaned bars, the quarantine of what cleaning rejected, and the universe."""

from __future__ import annotations

import pandera.polars as pa
import polars as pl
from pandera.api.polars.types import PolarsData

from quantlab_assets.compute import columns as c
from quantlab_assets.compute.data.cleaning import ACTION_DROPPED, ACTION_FLAGGED, ACTION_REJECTED, ROW_RULES, SERIES_RULES
from quantlab_assets.compute.data.membership import MEMBERSHIP_RULES
from quantlab_assets.compute.data.partition_span import OUTSIDE_PARTITIONS
from quantlab_assets.compute.data.quality import OHLC_RELATIVE_TOLERANCE


class RawBarsSchema(pa.DataFrameModel):
    """Bars exactly as a source delivered them, with the file and row each came from.

    Nothing is checked beyond types and provenance: raw is a record of what was received, and the
    cleaning step judges it. Close-only sources (skfolio's S&P 500 sample) leave open/high/low/volume null.
    """

    date: pl.Date = pa.Field(description="Trading date as received.")
    ticker: pl.String = pa.Field(nullable=True, description="Instrument symbol as received (null if missing).")
    open: pl.Float64 = pa.Field(nullable=True)
    high: pl.Float64 = pa.Field(nullable=True)
    low: pl.Float64 = pa.Field(nullable=True)
    close: pl.Float64 = pa.Field(nullable=True)
    adj_close: pl.Float64 = pa.Field(nullable=True, description="Split/dividend adjusted close, if the source has one.")
    volume: pl.Float64 = pa.Field(nullable=True)
    source: pl.String = pa.Field(description="Source kind: synthetic, sp500_sample, csv, yfinance.")
    source_file: pl.String = pa.Field(description="File, package resource or request the row came from.")
    source_row: pl.Int64 = pa.Field(ge=0, description="Row number within source_file (CSV: line number).")
    parse_error: pl.String = pa.Field(nullable=True, description="Why a field could not be parsed, else null.")

    class Config:
        strict = True


def _ohlc_consistent(data: PolarsData) -> pl.LazyFrame:
    high_ok = pl.col(c.HIGH) >= pl.max_horizontal(c.OPEN, c.CLOSE, c.LOW) * (1 - OHLC_RELATIVE_TOLERANCE)
    low_ok = pl.col(c.LOW) <= pl.min_horizontal(c.OPEN, c.CLOSE, c.HIGH) * (1 + OHLC_RELATIVE_TOLERANCE)
    return data.lazyframe.select((high_ok & low_ok).fill_null(True).alias("ohlc_consistent"))


class CleanedBarsSchema(pa.DataFrameModel):
    """Validated daily bars on the universe's trading calendar, one row per (date, ticker).

    Total-return adjusted: open, high, low, close and log_return are split- and dividend-adjusted (every
    return that means money reads them); raw_close is the close as the source reported it.
    """

    date: pl.Date
    ticker: pl.String
    open: pl.Float64 = pa.Field(gt=0, nullable=True, description="Adjusted open (traded open x adj_factor); null for close-only sources.")
    high: pl.Float64 = pa.Field(gt=0, nullable=True, description="Adjusted high (traded high x adj_factor); null for close-only sources.")
    low: pl.Float64 = pa.Field(gt=0, nullable=True, description="Adjusted low (traded low x adj_factor); null for close-only sources.")
    close: pl.Float64 = pa.Field(gt=0, description="Split- and dividend-adjusted close (raw_close x adj_factor).")
    volume: pl.Float64 = pa.Field(
        ge=0, nullable=True,
        description="Split-continuous share volume (traded volume / adj_factor, so close x volume is the traded dollar volume); 0 on forward-filled days; null for close-only sources.",
    )
    log_return: pl.Float64 = pa.Field(
        nullable=True, description="ln(close_t / close_prev) of the adjusted close, never rewritten; null on an instrument's first row."
    )
    raw_close: pl.Float64 = pa.Field(gt=0, description="The close as the source reported it (traded, or as adjusted as the source delivers it).")
    adj_factor: pl.Float64 = pa.Field(gt=0, description="adj_close / close as received; 1 where the universe declares its closes adjusted.")
    is_filled: pl.Boolean = pa.Field(description="Forward-filled from the last close (gap of at most 5 days).")
    is_outlier: pl.Boolean = pa.Field(description="log_return lies beyond 10 robust sigmas: flagged for review, kept as it happened.")
    is_member: pl.Boolean = pa.Field(
        description="A member of the universe that day (listed..delisted); earlier bars are history only."
    )

    class Config:
        strict = True
        unique = [c.DATE, c.TICKER]

    @pa.dataframe_check(error="high >= max(open, close, low) and low <= min(open, close, high)")
    @classmethod
    def ohlc_consistent(cls, data: PolarsData) -> pl.LazyFrame:
        return _ohlc_consistent(data)

    @pa.check(c.LOG_RETURN, error="log_return must be finite")
    @classmethod
    def finite_return(cls, data: PolarsData) -> pl.LazyFrame:
        return data.lazyframe.select(pl.col(data.key).is_finite().fill_null(True))


class QuarantinedBarsSchema(pa.DataFrameModel):
    """Rows the cleaning step rejected, flagged or dropped, with the rule that fired and where they came from."""

    date: pl.Date
    ticker: pl.String = pa.Field(nullable=True)
    open: pl.Float64 = pa.Field(nullable=True)
    high: pl.Float64 = pa.Field(nullable=True)
    low: pl.Float64 = pa.Field(nullable=True)
    close: pl.Float64 = pa.Field(nullable=True)
    adj_close: pl.Float64 = pa.Field(nullable=True)
    volume: pl.Float64 = pa.Field(nullable=True)
    source: pl.String = pa.Field(nullable=True, description="Null only for a forward-filled row (never received).")
    source_file: pl.String = pa.Field(nullable=True)
    source_row: pl.Int64 = pa.Field(nullable=True)
    rule: pl.String = pa.Field(isin=[*ROW_RULES, *SERIES_RULES, *MEMBERSHIP_RULES, OUTSIDE_PARTITIONS])
    action: pl.String = pa.Field(isin=[ACTION_REJECTED, ACTION_FLAGGED, ACTION_DROPPED])
    detail: pl.String

    class Config:
        strict = True


class UniverseSchema(pa.DataFrameModel):
    """Instruments of a universe with the sector and industry that later assets group and neutralise by."""

    ticker: pl.String = pa.Field(unique=True)
    name: pl.String
    sector: pl.String
    industry: pl.String
    tradable: pl.Boolean = pa.Field(description="False for indices and benchmark ETFs: never a holding, training row or alpha.")
    listed: pl.Date = pa.Field(nullable=True, description="First day of membership; null: from the first bar.")
    delisted: pl.Date = pa.Field(nullable=True, description="Last trading day as a member; null: still listed.")
    delisting_return: pl.Float64 = pa.Field(nullable=True, gt=-1, description="Proceeds of the delisting vs the last close.")

    class Config:
        strict = True
