"""The raw-bars contract every source produces: bars as received, plus where each row came from.

A source never repairs data: a value it cannot parse becomes null with the reason in `parse_error`,
and the row stays, so the cleaning step can quarantine it with its file and row number.
"""

from __future__ import annotations

import datetime as dt

import polars as pl

from quantlab_assets.compute import columns as c

RAW_SCHEMA: dict[str, pl.DataType] = {
    c.DATE: pl.Date(),
    c.TICKER: pl.String(),
    c.OPEN: pl.Float64(),
    c.HIGH: pl.Float64(),
    c.LOW: pl.Float64(),
    c.CLOSE: pl.Float64(),
    c.ADJ_CLOSE: pl.Float64(),
    c.VOLUME: pl.Float64(),
    c.SOURCE: pl.String(),
    c.SOURCE_FILE: pl.String(),
    c.SOURCE_ROW: pl.Int64(),
    c.PARSE_ERROR: pl.String(),
}


def empty_raw_frame() -> pl.DataFrame:
    return pl.DataFrame(schema=RAW_SCHEMA)


def as_raw_frame(bars: pl.DataFrame, *, source: str, source_file: str) -> pl.DataFrame:
    """Attach provenance to a parsed bar frame and order its columns as RAW_SCHEMA.

    `bars` must hold date and ticker; missing bar columns (a close-only source has no open/high/low
    or volume) become null rather than being invented. `source_row` is the row's position in the
    frame as received unless the source already numbered its rows (e.g. CSV line numbers).
    """
    missing_keys = {c.DATE, c.TICKER} - set(bars.columns)
    if missing_keys:
        raise ValueError(f"source {source!r} ({source_file}) produced bars without {sorted(missing_keys)}")
    frame = bars
    if c.SOURCE_ROW not in frame.columns:
        frame = frame.with_row_index(c.SOURCE_ROW).with_columns(pl.col(c.SOURCE_ROW).cast(pl.Int64))
    frame = frame.with_columns(
        pl.lit(source).alias(c.SOURCE),
        pl.lit(source_file).alias(c.SOURCE_FILE),
    )
    return frame.select(
        pl.col(name).cast(dtype) if name in frame.columns else pl.lit(None, dtype=dtype).alias(name)
        for name, dtype in RAW_SCHEMA.items()
    )


def month_slice(frame: pl.DataFrame, first_day: dt.date, last_day: dt.date) -> pl.DataFrame:
    """Rows whose date lies in [first_day, last_day] (inclusive)."""
    return frame.filter(pl.col(c.DATE).is_between(first_day, last_day, closed="both"))

