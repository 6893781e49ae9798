"""Rows dated outside every month partition: split from the rest and quarantined once, with file and row."""

from __future__ import annotations

import datetime as dt

import polars as pl

from quantlab_assets.compute import columns as c
from quantlab_assets.compute.data.cleaning import QUARANTINE_SCHEMA
from quantlab_assets.compute.data.partition_span import (
    OUTSIDE_PARTITIONS,
    outside_examples,
    quarantine_outside,
    split_by_span,
)
from quantlab_assets.compute.data.raw import as_raw_frame
from quantlab_assets.compute.schemas.data import QuarantinedBarsSchema

SPAN = (dt.date(1990, 1, 1), dt.date(2026, 12, 31))


def _raw(dates: list[dt.date], rows: list[int]) -> pl.DataFrame:
    bars = pl.DataFrame({c.DATE: dates, c.TICKER: ["AAA"] * len(dates), c.CLOSE: [10.0] * len(dates),
                         c.SOURCE_ROW: rows})
    return as_raw_frame(bars, source="csv", source_file="prices/AAA.csv")


def test_split_by_span_keeps_both_bounds_inside() -> None:
    raw = _raw([dt.date(1989, 12, 29), dt.date(1990, 1, 1), dt.date(2026, 12, 31), dt.date(2027, 1, 1)], [2, 3, 4, 5])
    inside, outside = split_by_span(raw, SPAN)
    assert inside[c.SOURCE_ROW].to_list() == [3, 4]
    assert outside[c.SOURCE_ROW].to_list() == [2, 5]


def test_an_outside_row_read_twice_is_quarantined_once_with_its_file_row_and_rule() -> None:
    # A run reads the month that stored the row and, through its lookback, an older month that stored it too.
    outside = pl.concat([_raw([dt.date(2099, 1, 5)], [7]), _raw([dt.date(2099, 1, 5), dt.date(1985, 1, 2)], [7, 2])])
    quarantine = quarantine_outside(outside, SPAN)
    assert quarantine.schema == pl.Schema(QUARANTINE_SCHEMA)
    QuarantinedBarsSchema.validate(quarantine)
    assert quarantine.select(c.DATE, c.SOURCE_FILE, c.SOURCE_ROW, c.RULE).rows() == [
        (dt.date(2099, 1, 5), "prices/AAA.csv", 7, OUTSIDE_PARTITIONS),
        (dt.date(1985, 1, 2), "prices/AAA.csv", 2, OUTSIDE_PARTITIONS),
    ]
    assert quarantine[c.DETAIL][0] == "dated 2099-01-05, outside every month partition (1990-01-01 .. 2026-12-31)"


def test_outside_examples_name_file_row_and_date() -> None:
    assert outside_examples(_raw([dt.date(2099, 1, 5)], [7])) == ["prices/AAA.csv:7 dated 2099-01-05"]
