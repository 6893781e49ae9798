"""A user's CSV/Parquet price files read into raw bars: nothing repaired, every problem traceable to a line."""

from __future__ import annotations

import datetime as dt
import random
from pathlib import Path

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from quantlab_assets.compute import columns as c
from quantlab_assets.compute.data.csv_source import (
    CsvLayout,
    SourceFileError,
    read_bar_file,
    read_bar_files,
    resolve_paths,
)
from quantlab_assets.compute.data.cleaning import CleaningParams, clean_bars
from quantlab_assets.compute.data.raw import RAW_SCHEMA
from quantlab_assets.compute.universe import UniverseConfigError

HEADER = "date,ticker,open,high,low,close,adj_close,volume\n"


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


@pytest.fixture
def good_csv(tmp_path: Path) -> Path:
    return _write(
        tmp_path / "prices.csv",
        HEADER
        + "2024-01-02,AAA,10,11,9,10.5,10.4,1000\n"
        + "2024-01-02,BBB,20,21,19,20.5,,2000\n"
        + "2024-01-03,AAA,10.5,12,10,11.5,11.4,1500\n",
    )


def test_a_well_formed_file_becomes_raw_bars_with_line_numbers(good_csv: Path) -> None:
    bars = read_bar_file(good_csv)
    assert bars.schema == pl.Schema(RAW_SCHEMA)
    expected = pl.DataFrame(
        {
            c.DATE: [dt.date(2024, 1, 2), dt.date(2024, 1, 2), dt.date(2024, 1, 3)],
            c.TICKER: ["AAA", "BBB", "AAA"],
            c.OPEN: [10.0, 20.0, 10.5],
            c.HIGH: [11.0, 21.0, 12.0],
            c.LOW: [9.0, 19.0, 10.0],
            c.CLOSE: [10.5, 20.5, 11.5],
            c.ADJ_CLOSE: [10.4, None, 11.4],
            c.VOLUME: [1000.0, 2000.0, 1500.0],
            c.SOURCE: ["csv"] * 3,
            c.SOURCE_FILE: [str(good_csv)] * 3,
            c.SOURCE_ROW: [2, 3, 4],
            c.PARSE_ERROR: [None, None, None],
        },
        schema=RAW_SCHEMA,
    )
    assert_frame_equal(bars, expected)


def test_source_file_label_and_source_kind_can_be_set(good_csv: Path) -> None:
    bars = read_bar_file(good_csv, source="sp500_sample", source_file="pkg==1.0:data/prices.csv")
    assert set(bars[c.SOURCE]) == {"sp500_sample"}
    assert set(bars[c.SOURCE_FILE]) == {"pkg==1.0:data/prices.csv"}


@pytest.mark.parametrize(
    "content",
    [
        pytest.param(HEADER + "2024-01-02,AAA,10,11,9,10.5,10.4,1000,7,8\n", id="ragged-long-row"),
        # A line cut short (a file truncated mid-write): read with truncate_ragged_lines=False, so ragged
        # lines are meant to be refused, not padded with nulls into a bar that has no close.
        pytest.param(HEADER + "2024-01-02,AAA,10,11,9,10.5,10.4,1000\n2024-01-03,AAA,10,11\n", id="ragged-short-row"),
        pytest.param(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x10", id="binary-png"),
        pytest.param(random.Random(0).randbytes(512), id="binary-random"),
        pytest.param(b"", id="empty-file"),
    ],
)
def test_a_file_that_is_not_a_table_of_bars_raises_naming_the_file(tmp_path: Path, content: str | bytes) -> None:
    path = tmp_path / "broken.csv"
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content)
    with pytest.raises(SourceFileError, match="broken.csv") as error:
        read_bar_file(path)
    assert str(path) in str(error.value)


def test_a_missing_required_column_is_named_with_the_files_columns(tmp_path: Path) -> None:
    path = _write(tmp_path / "no_close.csv", "date,ticker,price\n2024-01-02,AAA,10\n")
    with pytest.raises(SourceFileError) as error:
        read_bar_file(path)
    message = str(error.value)
    assert str(path) in message
    assert "'close'" in message
    assert "['date', 'ticker', 'price']" in message


def test_ticker_is_required_unless_taken_from_the_file_name(tmp_path: Path) -> None:
    path = _write(tmp_path / "MSFT.csv", "date,close\n2024-01-02,370.5\n2024-01-03,371.0\n")
    with pytest.raises(SourceFileError, match="ticker"):
        read_bar_file(path)
    bars = read_bar_file(path, CsvLayout(ticker_from_filename=True))
    assert bars[c.TICKER].to_list() == ["MSFT", "MSFT"]
    assert bars[c.CLOSE].to_list() == [370.5, 371.0]
    assert bars.select(pl.col(c.OPEN, c.HIGH, c.LOW, c.ADJ_CLOSE, c.VOLUME).null_count()).row(0) == (2,) * 5


def test_an_unparseable_number_keeps_the_row_with_the_reason(tmp_path: Path) -> None:
    path = _write(
        tmp_path / "prices.csv",
        HEADER
        + "2024-01-02,AAA,10,11,9,10.5,10.4,1000\n"
        + "2024-01-03,AAA,10,11,9,abc,10.4,1000\n"
        + "2024-01-04,AAA,10,#N/A,9,10.5,10.4,lots\n",
    )
    bars = read_bar_file(path)
    assert bars.height == 3
    assert bars[c.SOURCE_ROW].to_list() == [2, 3, 4]
    assert bars[c.PARSE_ERROR].to_list() == [
        None,
        "close: abc is not a number",
        "high: #N/A is not a number; volume: lots is not a number",
    ]
    assert bars[c.CLOSE].to_list() == [10.5, None, 10.5]
    assert bars[c.HIGH].to_list() == [11.0, 11.0, None]


def test_the_parse_error_names_the_files_column_header(tmp_path: Path) -> None:
    path = _write(tmp_path / "p.csv", "Day,Symbol,Last\n2024-01-02,AAA,ten\n")
    layout = CsvLayout(columns={c.DATE: "Day", c.TICKER: "Symbol", c.CLOSE: "Last"})
    assert read_bar_file(path, layout)[c.PARSE_ERROR].to_list() == ["Last: ten is not a number"]


def test_blanks_are_null_without_a_parse_error_and_separators_and_spaces_are_tolerated(tmp_path: Path) -> None:
    path = _write(
        tmp_path / "prices.csv",
        HEADER + '2024-01-02, AAA ,,,,"1,234.5",,\n' + "2024-01-03,,1,1,1,1,1,1\n",
    )
    bars = read_bar_file(path)
    assert bars[c.PARSE_ERROR].to_list() == [None, None]
    assert bars[c.CLOSE].to_list() == [1234.5, 1.0]
    assert bars[c.TICKER].to_list() == ["AAA", None]
    assert bars[c.OPEN].to_list() == [None, 1.0]


@pytest.mark.parametrize(
    ("bad_date", "layout", "fmt"),
    [
        pytest.param("2024-02-30", CsvLayout(), "ISO 8601", id="iso-impossible-day"),
        pytest.param("yesterday", CsvLayout(), "ISO 8601", id="iso-text"),
        pytest.param("2024-01-04", CsvLayout(date_format="%d/%m/%Y"), "%d/%m/%Y", id="wrong-format"),
    ],
)
def test_an_unparseable_date_raises_naming_file_line_and_value(
    tmp_path: Path, bad_date: str, layout: CsvLayout, fmt: str
) -> None:
    good_date = "2024-01-02" if layout.date_format is None else "02/01/2024"
    path = _write(tmp_path / "dates.csv", f"date,ticker,close\n{good_date},AAA,1\n{good_date},BBB,1\n{bad_date},AAA,1\n")
    with pytest.raises(SourceFileError) as error:
        read_bar_file(path, layout)
    message = str(error.value)
    assert str(path) in message
    assert "line(s) 4:" in message
    assert bad_date in message
    assert fmt in message


def test_many_bad_dates_are_listed_briefly(tmp_path: Path) -> None:
    path = _write(tmp_path / "dates.csv", "date,ticker,close\n" + "x,AAA,1\n" * 8)
    with pytest.raises(SourceFileError, match=r"line\(s\) 2, 3, 4, 5, 6 and 3 more"):
        read_bar_file(path)


def test_custom_column_mapping_and_date_format(tmp_path: Path) -> None:
    path = _write(
        tmp_path / "vendor.csv",
        "Trade Date,Symbol,Px Open,Px High,Px Low,Px Last,Vol,Comment\n"
        + "02/01/2024,AAA,10,11,9,10.5,100,fine\n"
        + "03/01/2024,AAA,10.5,11.5,10,11,200,also fine\n",
    )
    layout = CsvLayout(
        columns={
            c.DATE: "Trade Date", c.TICKER: "Symbol", c.OPEN: "Px Open", c.HIGH: "Px High", c.LOW: "Px Low",
            c.CLOSE: "Px Last", c.VOLUME: "Vol", "comment": "Comment",
        },
        date_format="%d/%m/%Y",
    )
    bars = read_bar_file(path, layout)
    assert bars.columns == list(RAW_SCHEMA)
    assert bars[c.DATE].to_list() == [dt.date(2024, 1, 2), dt.date(2024, 1, 3)]
    assert bars[c.CLOSE].to_list() == [10.5, 11.0]
    assert bars[c.VOLUME].to_list() == [100.0, 200.0]
    assert bars[c.ADJ_CLOSE].null_count() == 2


def test_parquet_input_is_read_like_csv(tmp_path: Path) -> None:
    frame = pl.DataFrame(
        {
            "date": [dt.date(2024, 1, 2), dt.date(2024, 1, 3)],
            "ticker": ["AAA", "AAA"],
            "close": [10.5, 11.25],
            "volume": [100, 200],
        }
    )
    path = tmp_path / "prices.parquet"
    frame.write_parquet(path)
    bars = read_bar_file(path)
    assert bars.schema == pl.Schema(RAW_SCHEMA)
    assert bars[c.DATE].to_list() == frame["date"].to_list()
    assert bars[c.CLOSE].to_list() == [10.5, 11.25]
    assert bars[c.VOLUME].to_list() == [100.0, 200.0]
    assert bars[c.PARSE_ERROR].null_count() == 2
    assert set(bars[c.SOURCE_FILE]) == {str(path)}
    assert bars[c.SOURCE_ROW].is_unique().all() and bars[c.SOURCE_ROW].is_sorted()


def test_a_corrupt_parquet_file_raises_naming_the_file(tmp_path: Path) -> None:
    path = tmp_path / "prices.parquet"
    path.write_bytes(b"PAR1 not really parquet")
    with pytest.raises(SourceFileError, match="prices.parquet"):
        read_bar_file(path)


def test_resolve_paths_expands_relative_and_absolute_patterns_sorted(tmp_path: Path) -> None:
    for name in ("b.csv", "a.csv", "sub/c.csv", "notes.txt"):
        _write(tmp_path / name, HEADER)
    assert resolve_paths(["*.csv"], tmp_path) == [tmp_path / "a.csv", tmp_path / "b.csv"]
    assert resolve_paths(["**/*.csv"], tmp_path) == sorted(tmp_path.glob("**/*.csv"))
    assert resolve_paths([str(tmp_path / "sub" / "*.csv")], Path("/nonexistent")) == [tmp_path / "sub" / "c.csv"]
    assert resolve_paths(["b.csv", "a.csv"], tmp_path) == [tmp_path / "b.csv", tmp_path / "a.csv"]


def test_resolve_paths_raises_on_a_pattern_with_no_match(tmp_path: Path) -> None:
    _write(tmp_path / "a.csv", HEADER)
    with pytest.raises(SourceFileError, match=r"no file matches '\*\.parquet'") as error:
        resolve_paths(["*.csv", "*.parquet"], tmp_path)
    assert str(tmp_path) in str(error.value)


def test_read_bar_files_stacks_files_each_row_keeping_its_file_and_line(tmp_path: Path) -> None:
    first = _write(tmp_path / "AAA.csv", "date,close\n2024-01-02,1\n2024-01-03,2\n")
    second = _write(tmp_path / "BBB.csv", "date,close\n2024-01-02,3\n")
    bars = read_bar_files([first, second], CsvLayout(ticker_from_filename=True))
    assert bars.select(c.TICKER, c.SOURCE_FILE, c.SOURCE_ROW).rows() == [
        ("AAA", str(first), 2), ("AAA", str(first), 3), ("BBB", str(second), 2),
    ]


def test_read_bar_files_of_no_files_is_an_empty_raw_frame() -> None:
    empty = read_bar_files([])
    assert empty.height == 0 and empty.schema == pl.Schema(RAW_SCHEMA)


# --- Adjusted closes through cleaning ------------------------------------------------------------------


def _split_file(path: Path, adjusted: bool, blank_adj_line: int | None = None) -> Path:
    """Twenty weekdays of a stock that splits 4:1 on the eleventh (traded 400 -> 101, a +1 % true move)."""
    days = [dt.date(2024, 1, 1) + dt.timedelta(days=i) for i in range(28)]
    days = [day for day in days if day.weekday() < 5][:20]
    lines = ["Date,Close" + (",Adj Close" if adjusted else "")]
    for i, day in enumerate(days):
        close = 400.0 if i < 10 else 101.0
        adj = "," if blank_adj_line == i + 2 else f",{close / 4 if i < 10 else close}"
        lines.append(f"{day},{close}" + (adj if adjusted else ""))
    return _write(path, "\n".join(lines) + "\n")


def test_a_users_raw_close_and_adjusted_close_give_continuous_cleaned_returns(tmp_path: Path) -> None:
    layout = CsvLayout(columns={c.DATE: "Date", c.CLOSE: "Close", c.ADJ_CLOSE: "Adj Close"}, ticker_from_filename=True)
    lenient = CleaningParams(min_history_days=1, max_missing_share=1.0)
    window = (dt.date(2024, 1, 1), dt.date(2024, 1, 31))

    def cleaned(*paths: Path, **options: object):
        bars = read_bar_files(list(paths), layout)
        return clean_bars(bars, ["NVX", "RAW"], window=window, as_of=window[1], params=lenient, universe="mine", **options)

    result = cleaned(_split_file(tmp_path / "NVX.csv", adjusted=True))
    returns = result.cleaned.sort(c.DATE)[c.LOG_RETURN].to_list()
    assert returns[10] == pytest.approx(0.00995, abs=1e-5)  # ln(101/100), not ln(101/400) = -1.379
    assert result.cleaned[c.RAW_CLOSE].to_list()[9:11] == [400.0, 101.0]

    # A blank Adj Close on one line: that row is quarantined with its file and line.
    holes = cleaned(_split_file(tmp_path / "holes" / "NVX.csv", adjusted=True, blank_adj_line=7))
    row = holes.quarantine.row(0, named=True)
    assert (row[c.RULE], row[c.SOURCE_FILE].endswith("holes/NVX.csv"), row[c.SOURCE_ROW]) == ("invalid_adj_close", True, 7)

    # A file without the column, in a universe that does not say what its closes are: a configuration error.
    raw_file = _split_file(tmp_path / "RAW.csv", adjusted=False)
    with pytest.raises(UniverseConfigError, match=r"mine: 20 bar\(s\) come without an adjusted close .*RAW\.csv"):
        cleaned(tmp_path / "NVX.csv", raw_file)
