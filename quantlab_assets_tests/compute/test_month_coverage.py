"""Month completeness of month-partitioned outputs: empty months, lost rows, windows cut short."""

import datetime as dt

import polars as pl

from quantlab_assets.compute import columns as c
from quantlab_assets.compute.data.month_coverage import (
    cut_months,
    month_coverage_failures,
    rows_by_month,
    shift_month,
    window_months,
)


def test_months_shift_across_years_and_windows_end_at_the_month() -> None:
    assert shift_month("2024-02-01", -3) == "2023-11-01"
    assert shift_month("2023-11-01", 14) == "2025-01-01"
    assert window_months("2024-02-01", 2) == ["2023-12-01", "2024-01-01", "2024-02-01"]


def test_rows_are_counted_per_calendar_month() -> None:
    frame = pl.DataFrame({c.DATE: [dt.date(2024, 1, 31), dt.date(2024, 2, 1), dt.date(2024, 2, 29)]})
    assert rows_by_month(frame) == {"2024-01-01": 1, "2024-02-01": 2}
    assert rows_by_month(frame.head(0)) == {}


def test_a_window_is_cut_only_where_the_source_holds_months_the_upstream_lacks() -> None:
    window = window_months("2024-03-01", 4)  # 2023-11 .. 2024-03
    source = {"2023-12-01", "2024-01-01", "2024-02-01", "2024-03-01"}  # the data starts 2023-12
    assert cut_months(window, {"2024-01-01", "2024-02-01", "2024-03-01"}, source) == ["2023-12-01"]
    assert cut_months(window, source, source) == []  # the first months of a source are not cut
    assert cut_months(window, set(), source) == []


def test_failures_say_empty_lost_and_cut_per_month() -> None:
    months = ["2024-01-01", "2024-02-01", "2024-03-01"]
    stored = {"2024-01-01", "2024-02-01", "2024-03-01"}
    failures = month_coverage_failures(
        months, {"2024-01-01": 10, "2024-02-01": 7}, {"2024-01-01": 10, "2024-02-01": 9, "2024-03-01": 4},
        stored, stored | {"2023-12-01"}, upstream="cleaned_bars", source="raw_ohlcv", universe="u", before=1,
    )
    assert set(failures) == {"2024-01-01", "2024-02-01", "2024-03-01"}
    assert "cut" in failures["2024-01-01"] and "[2023-12-01...2023-12-01|u]" in failures["2024-01-01"]
    assert "lost rows: 7 of 9" in failures["2024-02-01"]
    assert "came out empty" in failures["2024-03-01"]
    complete = month_coverage_failures(months, {"2024-01-01": 10}, {"2024-01-01": 10}, stored, stored,
                                       upstream="cleaned_bars", source="raw_ohlcv", universe="u", before=1)
    assert complete == {}
