"""Checks and helpers shared by every domain's schemas."""

from __future__ import annotations

import datetime as dt

import polars as pl

from quantlab_assets.compute import columns as c
from quantlab_assets.compute.schemas.base import conform, schema_failures
from quantlab_assets.compute.schemas.features import FeaturesSchema


def _features(values: list[float | None]) -> pl.DataFrame:
    return pl.DataFrame({
        c.DATE: [dt.date(2024, 1, 2) + dt.timedelta(days=i) for i in range(len(values))],
        c.TICKER: ["AAA"] * len(values),
        "ret_1d": pl.Series(values, dtype=pl.Float64),
    })


def test_finite_check_allows_null_but_not_inf_or_nan() -> None:
    assert schema_failures(FeaturesSchema, _features([0.1, None]), asset="features", partition=None) is None
    failures = schema_failures(FeaturesSchema, _features([0.1, float("inf"), float("nan")]), asset="features", partition=None)
    assert failures is not None
    assert "features must be finite" in failures and "2 failing" in failures and "at rows [1, 2]" in failures


def test_conform_gives_an_empty_frame_of_the_schema_only_where_storage_held_nothing() -> None:
    stored = _features([0.1])
    assert conform(stored, FeaturesSchema) is stored
    empty = conform(pl.DataFrame(), FeaturesSchema)
    assert empty.height == 0 and empty.schema[c.DATE] == pl.Date and empty.schema[c.TICKER] == pl.String
