"""Data schemas (raw, cleaned, quarantined bars, the universe) and `validate`: violations are reported with asset,
partition, column, rule and examples."""

from __future__ import annotations

import datetime as dt
from typing import Any

import polars as pl
import pytest

from quantlab_assets.compute import columns as c
from quantlab_assets.compute.data.cleaning import CLEANED_COLUMNS, clean_bars
from quantlab_assets.compute.data.membership import mark_members
from quantlab_assets.compute.data.raw import as_raw_frame, empty_raw_frame
from quantlab_assets.compute.schemas.base import SchemaViolation, schema_failures, validate
from quantlab_assets.compute.schemas.data import CleanedBarsSchema, QuarantinedBarsSchema, RawBarsSchema, UniverseSchema

DAY = dt.date(2024, 1, 2)
CLEANED_SCHEMA = {
    c.DATE: pl.Date, c.TICKER: pl.String, **{name: pl.Float64 for name in (*c.PRICE_COLUMNS, c.VOLUME)},
    c.LOG_RETURN: pl.Float64, c.RAW_CLOSE: pl.Float64, c.ADJ_FACTOR: pl.Float64, c.IS_FILLED: pl.Boolean,
    c.IS_OUTLIER: pl.Boolean, c.IS_MEMBER: pl.Boolean,
}


def _cleaned(*overrides: dict[str, Any]) -> pl.DataFrame:
    rows = []
    for i, override in enumerate(overrides):
        row = {
            c.DATE: DAY + dt.timedelta(days=i), c.TICKER: "AAA", c.OPEN: 10.0, c.HIGH: 11.0, c.LOW: 9.0, c.CLOSE: 10.5,
            c.VOLUME: 100.0, c.LOG_RETURN: 0.01, c.RAW_CLOSE: 10.5, c.ADJ_FACTOR: 1.0, c.IS_FILLED: False,
            c.IS_OUTLIER: False, c.IS_MEMBER: True,
        }
        row.update(override)
        rows.append(row)
    return pl.DataFrame(rows, schema=CLEANED_SCHEMA)


def test_validate_returns_a_conforming_frame_unchanged() -> None:
    frame = _cleaned({}, {c.LOG_RETURN: None})
    assert validate(CleanedBarsSchema, frame, asset="cleaned_bars", partition="2024-01|synthetic") is frame
    assert schema_failures(CleanedBarsSchema, frame, asset="cleaned_bars", partition=None) is None


def test_violation_message_names_asset_partition_column_rule_and_examples() -> None:
    frame = _cleaned({}, {c.CLOSE: -1.5, c.LOW: -2.0}, {c.CLOSE: -7.25, c.LOW: -8.0})
    with pytest.raises(SchemaViolation) as error:
        validate(CleanedBarsSchema, frame, asset="cleaned_bars", partition="2024-01|synthetic")
    message = str(error.value)
    assert message.startswith("asset 'cleaned_bars', partition '2024-01|synthetic' violates its schema:")
    close_line = next(line for line in message.splitlines() if "column 'close'" in line)
    assert "rule 'greater_than(0)'" in close_line
    assert "2 failing" in close_line
    assert "-1.5" in close_line and "-7.25" in close_line
    assert "at rows [1, 2]" in close_line
    assert "column 'low'" in message


def test_every_failing_check_is_reported_not_just_the_first() -> None:
    frame = _cleaned({}, {c.VOLUME: -1.0}, {c.LOG_RETURN: float("inf")}, {c.HIGH: 5.0})
    message = schema_failures(CleanedBarsSchema, frame, asset="cleaned_bars", partition="p")
    assert message is not None
    assert "column 'volume' rule 'greater_than_or_equal_to(0)'" in message
    assert "rule 'log_return must be finite'" in message and "inf" in message
    assert "high >= max(open, close, low)" in message


def test_a_partitionless_asset_is_reported_as_such() -> None:
    with pytest.raises(SchemaViolation, match=r"asset 'universe', partition None"):
        validate(UniverseSchema, pl.DataFrame({c.TICKER: ["A", "A"], c.NAME: ["x", "y"], c.SECTOR: ["s"] * 2,
                                               c.INDUSTRY: ["i"] * 2}), asset="universe", partition=None)


def test_raw_schema_accepts_a_close_only_frame() -> None:
    bars = pl.DataFrame({c.DATE: [DAY, DAY], c.TICKER: ["AAA", None], c.CLOSE: [1.0, None]})
    raw = as_raw_frame(bars, source="sp500_sample", source_file="skfolio==1:x.csv.gz")
    assert validate(RawBarsSchema, raw, asset="raw_bars", partition="p") is raw
    validate(RawBarsSchema, empty_raw_frame(), asset="raw_bars", partition="p")


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        pytest.param(lambda f: f.drop(c.PARSE_ERROR), "column 'RawBarsSchema' rule 'column_in_dataframe'", id="missing-column"),
        pytest.param(lambda f: f.with_columns(extra=pl.lit(1)), "column_in_schema", id="extra-column"),
        pytest.param(lambda f: f.with_columns(pl.col(c.SOURCE_ROW) - 5), "column 'source_row'", id="negative-source-row"),
        pytest.param(lambda f: f.with_columns(pl.lit(None, pl.String).alias(c.SOURCE_FILE)), "column 'source_file'",
                     id="null-source-file"),
        pytest.param(lambda f: f.with_columns(pl.col(c.CLOSE).cast(pl.String)), "column 'close'", id="wrong-dtype"),
    ],
)
def test_raw_schema_rejects_broken_provenance_and_types(change, expected: str) -> None:
    raw = as_raw_frame(pl.DataFrame({c.DATE: [DAY], c.TICKER: ["AAA"], c.CLOSE: [1.0]}), source="csv", source_file="f")
    with pytest.raises(SchemaViolation) as error:
        validate(RawBarsSchema, change(raw), asset="raw_bars", partition="p")
    assert expected in str(error.value)


def test_cleaned_schema_rejects_duplicate_keys() -> None:
    frame = _cleaned({}, {})
    frame = frame.with_columns(pl.lit(DAY).alias(c.DATE))
    with pytest.raises(SchemaViolation) as error:
        validate(CleanedBarsSchema, frame, asset="cleaned_bars", partition="p")
    assert "multiple_fields_uniqueness" in str(error.value)
    assert "2 failing" in str(error.value)


@pytest.mark.parametrize(
    "override",
    [
        pytest.param({c.HIGH: 10.4}, id="high-below-close"),
        pytest.param({c.LOW: 10.2}, id="low-above-open"),
        pytest.param({c.HIGH: 8.0, c.LOW: 9.0, c.OPEN: 8.5, c.CLOSE: 8.5}, id="low-above-high"),
    ],
)
def test_cleaned_schema_rejects_ohlc_violations(override: dict[str, Any]) -> None:
    frame = _cleaned({}, override)
    with pytest.raises(SchemaViolation) as error:
        validate(CleanedBarsSchema, frame, asset="cleaned_bars", partition="p")
    message = str(error.value)
    assert "high >= max(open, close, low) and low <= min(open, close, high)" in message
    assert "1 failing" in message and "at rows [1]" in message


def test_cleaned_schema_accepts_close_only_bars() -> None:
    frame = _cleaned({c.OPEN: None, c.HIGH: None, c.LOW: None, c.VOLUME: None})
    validate(CleanedBarsSchema, frame, asset="cleaned_bars", partition="p")


@pytest.fixture(scope="module")
def dirty_result(dirty_small_raw, small_tickers, small_market_params):
    return clean_bars(
        dirty_small_raw, small_tickers, window=(small_market_params.start, small_market_params.end),
        as_of=small_market_params.end,
    )


def test_cleaned_output_of_clean_bars_conforms(dirty_result, small_market) -> None:
    """What clean_bars writes must pass the schemas the IO layer validates it with."""
    assert tuple(dirty_result.cleaned.columns) == CLEANED_COLUMNS
    members = mark_members(dirty_result.cleaned, small_market.universe, dirty_result.cleaned[c.DATE].max())
    validate(CleanedBarsSchema, members, asset="cleaned_bars", partition="all|synthetic")


def test_quarantine_output_of_clean_bars_conforms(dirty_result) -> None:
    """The dirty panel has two NaN closes: their missing_close rows need a (non-null) detail too."""
    assert dirty_result.rule_counts["missing_close"] == 2
    validate(QuarantinedBarsSchema, dirty_result.quarantine, asset="quarantined_bars", partition="all|synthetic")


def test_quarantine_schema_rejects_an_unknown_rule_or_action(dirty_small_raw, small_tickers, small_market_params) -> None:
    result = clean_bars(
        dirty_small_raw.filter(pl.col(c.CLOSE).is_not_nan() & pl.col(c.CLOSE).is_not_null()), small_tickers,
        window=(small_market_params.start, small_market_params.end), as_of=small_market_params.end,
    )
    quarantine = result.quarantine.head(3).with_columns(
        pl.Series(c.RULE, ["made_up", "non_positive_price", "non_positive_price"]),
        pl.Series(c.ACTION, ["rejected", "deleted", "rejected"]),
    )
    message = schema_failures(QuarantinedBarsSchema, quarantine, asset="quarantined_bars", partition="p")
    assert message is not None
    lines = message.splitlines()
    rule_line = next(line for line in lines if "column 'rule'" in line)
    action_line = next(line for line in lines if "column 'action'" in line)
    assert "isin([" in rule_line and "made_up" in rule_line and "at rows [0]" in rule_line
    assert "isin([" in action_line and "deleted" in action_line and "at rows [1]" in action_line


def test_universe_schema_requires_unique_tickers_and_all_fields() -> None:
    good = pl.DataFrame({c.TICKER: ["A", "B"], c.NAME: ["a", "b"], c.SECTOR: ["s", "s"], c.INDUSTRY: ["i", "i"],
                         c.TRADABLE: [True, False], c.LISTED: [dt.date(2020, 1, 2), None], c.DELISTED: [None, None],
                         c.DELISTING_RETURN: [None, None]}, schema_overrides={c.DELISTED: pl.Date, c.DELISTING_RETURN: pl.Float64})
    validate(UniverseSchema, good, asset="universe", partition="u")
    with pytest.raises(SchemaViolation, match="column 'ticker' rule 'field_uniqueness'"):
        validate(UniverseSchema, good.with_columns(pl.lit("A").alias(c.TICKER)), asset="universe", partition="u")
    with pytest.raises(SchemaViolation, match="column 'sector' rule 'not_nullable'"):
        validate(UniverseSchema, good.with_columns(pl.lit(None, pl.String).alias(c.SECTOR)), asset="universe", partition="u")
