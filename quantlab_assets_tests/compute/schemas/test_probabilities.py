"""The one schema of out-of-fold upper-barrier probabilities, as each barrier classifier names its column."""

from __future__ import annotations

import datetime as dt

import polars as pl
import pytest

from quantlab_assets.compute import columns as c
from quantlab_assets.compute.schemas.base import empty_frame, schema_failures
from quantlab_assets.compute.schemas.deep import SupconProbabilitiesSchema, TbmProbabilitiesSchema
from quantlab_assets.compute.schemas.models import BarrierProbabilitiesSchema

SCHEMAS = {
    "barrier_probability": BarrierProbabilitiesSchema,
    "tbm_probability": TbmProbabilitiesSchema,
    "supcon_probability": SupconProbabilitiesSchema,
}


def _probabilities(column: str, probabilities: list[float], tickers: list[str] | None = None) -> pl.DataFrame:
    n = len(probabilities)
    return pl.DataFrame({
        c.DATE: [dt.date(2024, 1, 2)] * n,
        c.TICKER: tickers or [f"T{i}" for i in range(n)],
        "fold_id": [0] * n,
        column: probabilities,
        "hits_upper": pl.Series([1, 0, 1][:n], dtype=pl.Int8),
    })


@pytest.mark.parametrize("column", list(SCHEMAS))
def test_each_classifier_schema_accepts_its_own_column_only(column: str) -> None:
    schema = SCHEMAS[column]
    assert schema_failures(schema, _probabilities(column, [0.0, 0.4, 1.0]), asset="a", partition=None) is None
    assert list(empty_frame(schema).columns) == [c.DATE, c.TICKER, "fold_id", column, "hits_upper"]
    for other in set(SCHEMAS) - {column}:
        failures = schema_failures(schema, _probabilities(other, [0.5]), asset="a", partition=None)
        assert failures is not None and "column_in_schema" in failures and "column_in_dataframe" in failures


@pytest.mark.parametrize("column", list(SCHEMAS))
def test_each_classifier_schema_checks_range_outcome_and_keys(column: str) -> None:
    schema = SCHEMAS[column]
    frame = _probabilities(column, [1.2, -0.1, 0.5], tickers=["A", "B", "B"]).with_columns(
        pl.Series("hits_upper", [1, 2, 0], dtype=pl.Int8)
    )
    failures = schema_failures(schema, frame, asset="a", partition=None)
    assert failures is not None
    assert f"column '{column}' rule 'less_than_or_equal_to(1)'" in failures
    assert f"column '{column}' rule 'greater_than_or_equal_to(0)'" in failures
    assert "column 'hits_upper' rule 'isin([0, 1])'" in failures
    assert "multiple_fields_uniqueness" in failures
