"""fetch_raw_bars: one entry point per universe source, returning raw bars dated in the requested range."""

from __future__ import annotations

import dataclasses
import datetime as dt
import textwrap
from pathlib import Path

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from quantlab_assets.compute import columns as c
from quantlab_assets.compute.data.csv_source import SourceFileError
from quantlab_assets.compute.data.raw import RAW_SCHEMA, as_raw_frame
from quantlab_assets.compute.data.sources import fetch_raw_bars
from quantlab_assets.compute.data.synthetic import generate_synthetic_market
from quantlab_assets.compute.universe import UniverseConfigError, UniverseSpec, load_universe_spec, synthetic_params

INSTRUMENTS = """\
instruments:
  - {ticker: AAA, name: A Corp, sector: Tech, industry: Software}
  - {ticker: BBB, name: B Corp, sector: Energy, industry: Oil}
"""


def _spec(directory: Path, text: str) -> UniverseSpec:
    path = directory / "universe.yaml"
    path.write_text(textwrap.dedent(text))
    return load_universe_spec(path)


@pytest.fixture
def synthetic_spec(tmp_path: Path) -> UniverseSpec:
    return _spec(tmp_path, "name: syn\nsource: synthetic\nsynthetic: {seed: 3, n_instruments: 6, start: 2019-01-01}\n")


def test_synthetic_bars_stop_at_as_of(synthetic_spec: UniverseSpec) -> None:
    as_of = dt.date(2020, 3, 11)
    fetched = fetch_raw_bars(synthetic_spec, dt.date(2020, 3, 1), dt.date(2020, 3, 31), as_of=as_of)
    bars = fetched.bars
    assert bars.schema == pl.Schema(RAW_SCHEMA)
    assert bars[c.DATE].max() == as_of
    assert bars[c.DATE].min() == dt.date(2020, 3, 2)  # the 1st is a Sunday
    assert fetched.notes == {"synthetic_seed": 3}
    assert set(bars[c.SOURCE]) == {"synthetic"}
    assert set(bars[c.SOURCE_FILE]) == {"synthetic(seed=3, n_instruments=6, start=2019-01-01)"}


def test_synthetic_bars_are_the_generators_bars_in_range(synthetic_spec: UniverseSpec) -> None:
    first_day, last_day, as_of = dt.date(2020, 2, 1), dt.date(2020, 2, 29), dt.date(2020, 6, 30)
    fetched = fetch_raw_bars(synthetic_spec, first_day, last_day, as_of=as_of).bars
    params = dataclasses.replace(synthetic_params(synthetic_spec), end=as_of)
    expected = generate_synthetic_market(params).bars.filter(pl.col(c.DATE).is_between(first_day, last_day))
    assert_frame_equal(fetched.select(c.DATE, c.TICKER, *c.BAR_COLUMNS), expected, check_exact=True)
    assert fetched[c.PARSE_ERROR].null_count() == fetched.height


def test_a_later_as_of_never_changes_the_bars_already_fetched(synthetic_spec: UniverseSpec) -> None:
    """The daily refresh of the newest partition appends days; it never rewrites earlier ones."""
    first_day, last_day = dt.date(2020, 3, 1), dt.date(2020, 3, 31)
    early = fetch_raw_bars(synthetic_spec, first_day, last_day, as_of=dt.date(2020, 3, 11)).bars
    late = fetch_raw_bars(synthetic_spec, first_day, last_day, as_of=dt.date(2020, 3, 31)).bars
    common = late.filter(pl.col(c.DATE) <= dt.date(2020, 3, 11))
    assert_frame_equal(
        early.select(c.DATE, c.TICKER, *c.BAR_COLUMNS), common.select(c.DATE, c.TICKER, *c.BAR_COLUMNS), check_exact=True
    )


@pytest.mark.parametrize(
    ("first_day", "last_day", "as_of"),
    [
        pytest.param(dt.date(2018, 1, 1), dt.date(2018, 12, 31), dt.date(2024, 1, 1), id="range-before-start"),
        pytest.param(dt.date(2020, 3, 1), dt.date(2020, 3, 31), dt.date(2020, 2, 28), id="as-of-before-range"),
        pytest.param(dt.date(2019, 1, 1), dt.date(2019, 1, 31), dt.date(2018, 12, 31), id="as-of-before-start"),
    ],
)
def test_synthetic_fetch_with_nothing_to_return_is_an_empty_raw_frame(
    synthetic_spec: UniverseSpec, first_day: dt.date, last_day: dt.date, as_of: dt.date
) -> None:
    fetched = fetch_raw_bars(synthetic_spec, first_day, last_day, as_of=as_of)
    assert fetched.bars.height == 0
    assert fetched.bars.schema == pl.Schema(RAW_SCHEMA)


def test_a_csv_universe_reads_its_files_relative_to_its_yaml(tmp_path: Path) -> None:
    prices = tmp_path / "prices"
    prices.mkdir()
    (prices / "AAA.csv").write_text("Date,Close,Volume\n2024-01-31,9.5,10\n2024-02-01,10,100\n2024-02-02,10.5,200\n")
    (prices / "BBB.csv").write_text("Date,Close,Volume\n2024-02-01,20,300\n2024-03-01,21,400\n")
    (prices / "README.txt").write_text("not prices")
    spec = _spec(
        tmp_path,
        "name: mine\n"
        "source: csv\n"
        "csv:\n"
        "  paths: [prices/*.csv]\n"
        "  columns: {date: Date, close: Close, volume: Volume}\n"
        "  ticker_from_filename: true\n" + INSTRUMENTS,
    )
    fetched = fetch_raw_bars(spec, dt.date(2024, 2, 1), dt.date(2024, 2, 29), as_of=dt.date(2024, 3, 31))
    expected_files = [str(prices / "AAA.csv"), str(prices / "BBB.csv")]
    assert fetched.notes == {"files": expected_files}
    bars = fetched.bars
    assert bars.schema == pl.Schema(RAW_SCHEMA)
    assert bars.select(c.DATE, c.TICKER, c.CLOSE, c.VOLUME, c.SOURCE_FILE, c.SOURCE_ROW).rows() == [
        (dt.date(2024, 2, 1), "AAA", 10.0, 100.0, expected_files[0], 3),
        (dt.date(2024, 2, 2), "AAA", 10.5, 200.0, expected_files[0], 4),
        (dt.date(2024, 2, 1), "BBB", 20.0, 300.0, expected_files[1], 2),
    ]
    assert set(bars[c.SOURCE]) == {"csv"}


def test_a_csv_universe_with_a_date_format_and_one_long_file(tmp_path: Path) -> None:
    (tmp_path / "all.csv").write_text("day,sym,px\n01/02/2024,AAA,1\n01/02/2024,BBB,2\n")
    spec = _spec(
        tmp_path,
        'name: mine\nsource: csv\ncsv: {paths: [all.csv], columns: {date: day, ticker: sym, close: px}, '
        'date_format: "%m/%d/%Y"}\n' + INSTRUMENTS,
    )
    bars = fetch_raw_bars(spec, dt.date(2024, 1, 1), dt.date(2024, 1, 31), as_of=dt.date(2024, 1, 31)).bars
    assert bars.select(c.DATE, c.TICKER, c.CLOSE).rows() == [
        (dt.date(2024, 1, 2), "AAA", 1.0), (dt.date(2024, 1, 2), "BBB", 2.0),
    ]


def test_a_csv_universe_without_paths_raises_naming_the_file(tmp_path: Path) -> None:
    spec = _spec(tmp_path, "name: mine\nsource: csv\ncsv: {ticker_from_filename: true}\n" + INSTRUMENTS)
    with pytest.raises(UniverseConfigError, match="csv.paths") as error:
        fetch_raw_bars(spec, dt.date(2024, 1, 1), dt.date(2024, 1, 31), as_of=dt.date(2024, 1, 31))
    assert str(spec.config_path) in str(error.value)


def test_a_csv_universe_with_an_unknown_option_raises_naming_the_file(tmp_path: Path) -> None:
    (tmp_path / "all.csv").write_text("date,ticker,close\n2024-01-02,AAA,1\n")
    spec = _spec(tmp_path, "name: mine\nsource: csv\ncsv: {paths: [all.csv], separator: ';'}\n" + INSTRUMENTS)
    with pytest.raises(UniverseConfigError) as error:
        fetch_raw_bars(spec, dt.date(2024, 1, 1), dt.date(2024, 1, 31), as_of=dt.date(2024, 1, 31))
    assert str(spec.config_path) in str(error.value) and "separator" in str(error.value)


def test_the_sp500_sample_universe_returns_the_packaged_rows_in_range() -> None:
    from quantlab_assets.compute.universe import load_universe_catalog

    spec = load_universe_catalog()["sp500_sample"]
    bars = fetch_raw_bars(spec, dt.date(2018, 12, 27), dt.date(2019, 1, 3), as_of=dt.date(2019, 1, 3)).bars
    assert bars[c.DATE].min() == dt.date(2018, 12, 27) and bars[c.DATE].max() == dt.date(2019, 1, 3)
    per_ticker = dict(bars.group_by(c.TICKER).len().iter_rows())
    assert len(per_ticker) == 22
    assert per_ticker["^GSPC"] == per_ticker["^IXIC"] == 3  # 27, 28 and 31 December: the index files end in 2018
    assert per_ticker["AAPL"] == 5


def test_fetched_rows_keep_the_raw_contract(synthetic_spec: UniverseSpec) -> None:
    bars = fetch_raw_bars(synthetic_spec, dt.date(2019, 1, 1), dt.date(2019, 1, 31), as_of=dt.date(2019, 1, 31)).bars
    redone = as_raw_frame(bars.drop(c.SOURCE_ROW), source="synthetic", source_file=bars[c.SOURCE_FILE][0])
    assert redone.columns == bars.columns


def test_a_column_the_universe_maps_but_the_file_lacks_is_an_error_naming_both(tmp_path: Path) -> None:
    # The mapping promises a volume column: without it every volume feature would silently be null.
    (tmp_path / "AAA.csv").write_text("Date,Close,Volume\n2024-02-01,10,100\n")
    (tmp_path / "BBB.csv").write_text("Date,Close,Turnover\n2024-02-01,20,300\n")
    spec = _spec(
        tmp_path,
        "name: mine\nsource: csv\ncsv:\n  paths: ['*.csv']\n  columns: {date: Date, close: Close, volume: Volume}\n"
        "  ticker_from_filename: true\n" + INSTRUMENTS,
    )
    with pytest.raises(SourceFileError) as error:
        fetch_raw_bars(spec, dt.date(2024, 2, 1), dt.date(2024, 2, 29), as_of=dt.date(2024, 3, 31))
    message = str(error.value)
    assert str(tmp_path / "BBB.csv") in message and "'volume': 'Volume'" in message


def test_columns_the_default_layout_reads_stay_optional_when_no_mapping_is_given(tmp_path: Path) -> None:
    (tmp_path / "AAA.csv").write_text("date,close\n2024-02-01,10\n")
    spec = _spec(tmp_path, "name: mine\nsource: csv\ncsv: {paths: ['*.csv'], ticker_from_filename: true}\n" + INSTRUMENTS)
    bars = fetch_raw_bars(spec, dt.date(2024, 2, 1), dt.date(2024, 2, 29), as_of=dt.date(2024, 3, 31)).bars
    assert bars.select(c.TICKER, c.CLOSE, c.VOLUME).rows() == [("AAA", 10.0, None)]


def test_rows_dated_outside_the_partitions_span_come_back_beside_the_window(tmp_path: Path) -> None:
    (tmp_path / "AAA.csv").write_text(
        "date,close\n1985-01-02,9\n2024-01-31,9.5\n2024-02-01,10\n2099-01-05,11\n"
    )
    spec = _spec(tmp_path, "name: mine\nsource: csv\ncsv: {paths: ['*.csv'], ticker_from_filename: true}\n" + INSTRUMENTS)
    span = (dt.date(1990, 1, 1), dt.date(2026, 12, 31))
    fetched = fetch_raw_bars(spec, dt.date(2024, 2, 1), dt.date(2024, 2, 29), as_of=dt.date(2024, 3, 31), span=span)
    assert fetched.bars[c.DATE].to_list() == [dt.date(2024, 2, 1)]
    assert fetched.outside.schema == pl.Schema(RAW_SCHEMA)
    assert fetched.outside.select(c.DATE, c.SOURCE_ROW).rows() == [(dt.date(1985, 1, 2), 2), (dt.date(2099, 1, 5), 5)]
    # Without a span (a caller that asks for the window only) nothing comes back beside it.
    assert fetch_raw_bars(spec, dt.date(2024, 2, 1), dt.date(2024, 2, 29), as_of=dt.date(2024, 3, 31)).outside.height == 0
