"""The validation entry point every asset writes through, and checks shared by several domains."""

from __future__ import annotations

import pandera.errors
import pandera.polars as pa
import polars as pl
from pandera.api.polars.types import PolarsData

EXAMPLE_ROWS = 5


class SchemaViolation(ValueError):
    """A frame broke its schema; the message names asset, partition, columns, rules and example rows."""


def validate(schema: type[pa.DataFrameModel], frame: pl.DataFrame, *, asset: str, partition: str | None) -> pl.DataFrame:
    """Return `frame` if it conforms to `schema` (all checks run), else raise `SchemaViolation`."""
    failures = schema_failures(schema, frame, asset=asset, partition=partition)
    if failures:
        raise SchemaViolation(failures)
    return frame


def schema_failures(
    schema: type[pa.DataFrameModel], frame: pl.DataFrame, *, asset: str, partition: str | None
) -> str | None:
    """A description of every way `frame` breaks `schema`, or None if it conforms."""
    try:
        schema.validate(frame, lazy=True)
    except pandera.errors.SchemaErrors as errors:
        return describe_failures(errors.failure_cases, asset=asset, partition=partition)
    return None


def describe_failures(failure_cases: pl.DataFrame, *, asset: str, partition: str | None) -> str:
    """One line per (column, rule) with its count and a few failing values and row indices."""
    lines = [f"asset {asset!r}, partition {partition!r} violates its schema:"]
    grouped = (
        failure_cases.with_columns(pl.col("failure_case").cast(pl.String), pl.col("column").cast(pl.String))
        .group_by("column", "check", maintain_order=True)
        .agg(pl.len().alias("n"), pl.col("failure_case").head(EXAMPLE_ROWS), pl.col("index").head(EXAMPLE_ROWS))
    )
    for row in grouped.iter_rows(named=True):
        lines.append(
            f"  column {row['column']!r} rule {row['check']!r}: {row['n']} failing; "
            f"examples {row['failure_case']} at rows {row['index']}"
        )
    return "\n".join(lines)


def empty_frame(schema: type[pa.DataFrameModel]) -> pl.DataFrame:
    """A frame with the schema's columns and no rows."""
    return pl.DataFrame(schema={name: column.dtype.type for name, column in schema.to_schema().columns.items()})


def conform(frame: pl.DataFrame, schema: type[pa.DataFrameModel]) -> pl.DataFrame:
    """`frame`, or an empty frame of `schema` where storage held no file for it (no columns at all)."""
    return frame if frame.width else empty_frame(schema)


def finite_or_null(data: PolarsData, columns: pl.Expr) -> pl.LazyFrame:
    """Per row: every value of `columns` is finite or null; the lab writes null, never inf or NaN, where a
    value is undefined, so that a mean or a model never silently absorbs an undefined value."""
    return data.lazyframe.select(pl.all_horizontal(columns.is_finite().fill_null(True)).alias("finite"))
