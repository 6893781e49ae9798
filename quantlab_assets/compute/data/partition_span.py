"""Rows dated outside every month partition: kept and quarantined, never silently skipped.

Bar assets are partitioned by month from a first month to the newest one. A source row dated before
the first month (a 1985 typo) or after the newest (2099) belongs to no partition, so a fetch cut to
the run's months would drop it unseen. Instead the source returns such rows beside the window, raw
storage keeps them with the newest month of the run, and the cleaning quarantines them under
OUTSIDE_PARTITIONS with their file and row.
"""

from __future__ import annotations

import datetime as dt

import polars as pl

from quantlab_assets.compute import columns as c
from quantlab_assets.compute.data.cleaning import ACTION_REJECTED, QUARANTINE_SCHEMA

OUTSIDE_PARTITIONS = "outside_partitions"


def outside_span(span: tuple[dt.date, dt.date]) -> pl.Expr:
    """True for rows dated before span[0] or after span[1] (both inclusive bounds of the partitions)."""
    return ~pl.col(c.DATE).is_between(*span, closed="both")


def split_by_span(frame: pl.DataFrame, span: tuple[dt.date, dt.date]) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(rows inside the partitions' span, rows outside it)."""
    outside = outside_span(span)
    return frame.filter(~outside), frame.filter(outside)


def quarantine_outside(outside: pl.DataFrame, span: tuple[dt.date, dt.date]) -> pl.DataFrame:
    """Quarantine rows (QUARANTINE_SCHEMA) for raw rows dated outside `span`, one per source file and row.

    A run reads its lookback months too, so the same stored row can arrive twice: it is quarantined once.
    """
    first, last = span
    rows = outside.unique(subset=[c.SOURCE_FILE, c.SOURCE_ROW, c.DATE, c.TICKER], keep="first", maintain_order=True)
    return rows.select(
        *[pl.col(name).cast(dtype) for name, dtype in QUARANTINE_SCHEMA.items() if name in rows.columns],
        pl.lit(OUTSIDE_PARTITIONS).alias(c.RULE),
        pl.lit(ACTION_REJECTED).alias(c.ACTION),
        pl.format("dated {}, outside every month partition ({} .. {})", pl.col(c.DATE), pl.lit(str(first)),
                  pl.lit(str(last))).alias(c.DETAIL),
    ).select(list(QUARANTINE_SCHEMA))


def outside_examples(outside: pl.DataFrame, n: int = 5) -> list[str]:
    """'file:row date' of the first `n` rows, for metadata and logs."""
    return [f"{file}:{row} dated {date}" for file, row, date in outside.head(n).select(c.SOURCE_FILE, c.SOURCE_ROW, c.DATE).iter_rows()]
